using System.Text.Json.Nodes;

namespace KimiSharp.Server.Tests;

/// <summary>The agent endpoint gives the model one task at a time, as k2-nano was trained.</summary>
public sealed class AgentTaskTests
{
    [Fact]
    public void The_agent_sees_the_system_prompt_and_the_conversation_from_the_last_question_on()
    {
        var conversation = JsonNode.Parse("""
            [{"role":"system","content":"be brief"},
             {"role":"user","content":"How many miles is 12 km?"},
             {"role":"assistant","content":"","tool_calls":[{"id":"functions.convert_units:0","type":"function","function":{"name":"convert_units","arguments":"{}"}}]},
             {"role":"tool","tool_call_id":"functions.convert_units:0","name":"convert_units","content":"7.456"},
             {"role":"assistant","content":"12 km is 7.456 miles."},
             {"role":"user","content":"What is 3 + 4?"}]
            """)!.AsArray();
        var task = AgentEndpoint.CurrentTask(conversation);
        Assert.Equal(2, task.Count);
        Assert.Equal("be brief", task[0]!["content"]!.GetValue<string>());
        Assert.Equal("What is 3 + 4?", task[1]!["content"]!.GetValue<string>());
        Assert.Equal(6, conversation.Count); // the input is not changed
    }
}
