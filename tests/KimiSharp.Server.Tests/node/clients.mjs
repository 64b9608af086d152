// Drives a KimiSharp server with the official OpenAI and Anthropic JavaScript SDKs and prints what they saw as JSON.
// Usage: node clients.mjs BASE_URL MODEL API_KEY
import OpenAI from "openai";
import Anthropic from "@anthropic-ai/sdk";

const [baseUrl, model, apiKey] = process.argv.slice(2);
const openai = new OpenAI({ baseURL: `${baseUrl}/v1`, apiKey });
const anthropic = new Anthropic({ baseURL: baseUrl, apiKey });
const system = "You are a terse assistant.";
const question = "Name a colour.";
const result = {};

const chat = await openai.chat.completions.create({
  model, temperature: 0, max_tokens: 20,
  messages: [{ role: "system", content: system }, { role: "user", content: question }],
});
result.openai = {
  content: chat.choices[0].message.content ?? "",
  reasoning: chat.choices[0].message.reasoning_content ?? "",
  finish: chat.choices[0].finish_reason,
  usage: chat.usage,
};

let streamed = "", streamedReasoning = "", chunks = 0, usage = null;
const stream = await openai.chat.completions.create({
  model, temperature: 0, max_tokens: 20, stream: true, stream_options: { include_usage: true },
  messages: [{ role: "system", content: system }, { role: "user", content: question }],
});
for await (const chunk of stream) {
  chunks++;
  if (chunk.usage) usage = chunk.usage;
  const delta = chunk.choices[0]?.delta ?? {};
  streamed += delta.content ?? "";
  streamedReasoning += delta.reasoning_content ?? "";
}
result.openaiStream = { content: streamed, reasoning: streamedReasoning, chunks, usage };

const tools = [{ type: "function", function: { name: "lookup", parameters: { type: "object", properties: { q: { type: "string", maxLength: 8 } }, required: ["q"] } } }];
const toolChat = await openai.chat.completions.create({
  model, temperature: 0, max_tokens: 80, tools, tool_choice: "required",
  messages: [{ role: "user", content: "look something up" }],
});
const call = toolChat.choices[0].message.tool_calls[0];
result.openaiTool = { name: call.function.name, id: call.id, arguments: JSON.parse(call.function.arguments), finish: toolChat.choices[0].finish_reason };

const message = await anthropic.messages.create({
  model, max_tokens: 20, temperature: 0, system,
  messages: [{ role: "user", content: question }],
});
result.anthropic = {
  text: message.content.filter(b => b.type === "text").map(b => b.text).join(""),
  thinking: message.content.filter(b => b.type === "thinking").map(b => b.thinking).join(""),
  stop: message.stop_reason,
  usage: message.usage,
};

const events = [];
let streamedText = "", streamedThinking = "";
const anthropicStream = anthropic.messages.stream({
  model, max_tokens: 20, temperature: 0, system,
  messages: [{ role: "user", content: question }],
});
for await (const event of anthropicStream) {
  events.push(event.type);
  if (event.type === "content_block_delta" && event.delta.type === "text_delta") streamedText += event.delta.text;
  if (event.type === "content_block_delta" && event.delta.type === "thinking_delta") streamedThinking += event.delta.thinking;
}
const final = await anthropicStream.finalMessage();
result.anthropicStream = { text: streamedText, thinking: streamedThinking, events, stop: final.stop_reason };

const toolMessage = await anthropic.messages.create({
  model, max_tokens: 80, temperature: 0, tool_choice: { type: "any" },
  tools: [{ name: "lookup", input_schema: { type: "object", properties: { q: { type: "string", maxLength: 8 } }, required: ["q"] } }],
  messages: [{ role: "user", content: "look something up" }],
});
const use = toolMessage.content.find(b => b.type === "tool_use");
result.anthropicTool = { name: use.name, id: use.id, input: use.input, stop: toolMessage.stop_reason };

try {
  await anthropic.messages.create({ model: "no-such-model", max_tokens: 5, messages: [{ role: "user", content: "x" }] });
  result.anthropicError = null;
} catch (e) {
  result.anthropicError = { status: e.status, type: e.error?.error?.type };
}

console.log(JSON.stringify(result));
