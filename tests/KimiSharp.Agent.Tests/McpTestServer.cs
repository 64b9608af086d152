using KimiSharp.Agent.Mcp;

namespace KimiSharp.Agent.Tests;

/// <summary>Where the built tests/KimiSharp.McpTestServer is, and configurations that start it.</summary>
internal static class McpTestServer
{
    private static readonly Lazy<string> DllPath = new(FindDll);

    /// <summary>A stdio configuration running the test server with <paramref name="arguments"/> after the dll.</summary>
    public static McpStdioServerConfig Config(params string[] arguments) =>
        new("dotnet", [DllPath.Value, .. arguments], new Dictionary<string, string>(), null);

    public static string Dll => DllPath.Value;

    /// <summary>
    /// The test project references the server (without referencing its assembly) so it is built first, into
    /// tests/KimiSharp.McpTestServer/bin/CONFIG/TFM/, next to this assembly's tests/KimiSharp.Agent.Tests/bin/CONFIG/TFM/.
    /// </summary>
    private static string FindDll()
    {
        var here = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        string framework = here.Name;
        string configuration = here.Parent!.Name;
        var testsFolder = here.Parent!.Parent!.Parent!.Parent!;
        string dll = Path.Combine(testsFolder.FullName, "KimiSharp.McpTestServer", "bin", configuration, framework,
            "KimiSharp.McpTestServer.dll");
        return File.Exists(dll)
            ? dll
            : throw new FileNotFoundException($"the MCP test server is not built at {dll}; build tests/KimiSharp.McpTestServer", dll);
    }
}
