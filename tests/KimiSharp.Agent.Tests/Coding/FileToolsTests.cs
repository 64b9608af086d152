using KimiSharp.Agent.Approvals;
using KimiSharp.Agent.Coding;
using KimiSharp.Agent.Tools;
using Microsoft.Extensions.AI;

namespace KimiSharp.Agent.Tests.Coding;

public class FileToolsTests
{
    private static IReadOnlyList<AIFunction> Tools(TempFolder temp, CodingToolOptions? options = null) =>
        CodingTools.Create(temp.Workspace, options ?? new CodingToolOptions());

    [Fact]
    public void FactoryListsTheToolsWithTraits()
    {
        using var temp = new TempFolder();
        IReadOnlyList<AIFunction> tools = CodingTools.Create(temp.Workspace, new CodingToolOptions { DocsFolder = temp.Root });
        Assert.Equal(["read_file", "write_file", "edit_file", "list_dir", "glob", "grep", "shell", "fetch", "search_docs"], tools.Select(t => t.Name));
        string[] readOnly = ["read_file", "list_dir", "glob", "grep", "fetch", "search_docs"];
        foreach (AIFunction tool in tools)
        {
            Assert.Equal(readOnly.Contains(tool.Name), ToolTraits.IsReadOnly(tool));
            Assert.Equal(!readOnly.Contains(tool.Name), ToolTraits.NeedsApproval(tool));
            Assert.Equal("builtin", ToolTraits.Source(tool));
            Assert.Equal("object", tool.JsonSchema.GetProperty("type").GetString());
        }
        Assert.DoesNotContain(CodingTools.Create(temp.Workspace), t => t.Name == "search_docs");
    }

    [Fact]
    public async Task ReadFileNumbersLinesPagesAndRefusesBinary()
    {
        using var temp = new TempFolder();
        temp.Write("a.txt", "one\ntwo\r\nthree\nfour\n");
        AIFunction read = Tools(temp).Named("read_file");

        ToolResult all = await ToolCalls.CallAsync(read, """{"path":"a.txt"}""");
        Assert.Equal("     1\tone\n     2\ttwo\n     3\tthree\n     4\tfour\n", all.Content);

        ToolResult page = await ToolCalls.CallAsync(read, """{"path":"a.txt","offset":2,"limit":2}""");
        Assert.Equal("     2\ttwo\n     3\tthree\n[lines 2-3 of 4 shown; read on with offset=4]\n", page.Content);

        ToolResult past = await ToolCalls.CallAsync(read, """{"path":"a.txt","offset":9}""");
        Assert.True(past.IsError);
        Assert.Contains("past the end", past.Content);

        File.WriteAllBytes(temp.InRoot("b.bin"), [1, 2, 0, 3]);
        ToolResult binary = await ToolCalls.CallAsync(read, """{"path":"b.bin"}""");
        Assert.Equal("error: 'b.bin' is a binary file", binary.Content);

        ToolResult missing = await ToolCalls.CallAsync(read, """{"path":"nope.txt"}""");
        Assert.Equal("error: file 'nope.txt' does not exist", missing.Content);
    }

    [Fact]
    public async Task ReadFileCapsOutput()
    {
        using var temp = new TempFolder();
        temp.Write("long.txt", string.Join("\n", Enumerable.Range(1, 500).Select(i => new string('x', 50))) + "\n");
        AIFunction read = Tools(temp, new CodingToolOptions { MaxOutputChars = 1000 }).Named("read_file");
        ToolResult result = await ToolCalls.CallAsync(read, """{"path":"long.txt"}""");
        Assert.False(result.IsError);
        Assert.True(result.Content.Length < 1200);
        Assert.EndsWith("of 500 shown; read on with offset=18]\n", result.Content);
    }

    [Fact]
    public async Task ReadThroughAnOutsideSymlinkIsRefused()
    {
        using var temp = new TempFolder();
        File.WriteAllText(Path.Combine(temp.Outside, "secret.txt"), "TOP SECRET");
        File.CreateSymbolicLink(temp.InRoot("link.txt"), Path.Combine(temp.Outside, "secret.txt"));
        ToolResult result = await ToolCalls.CallAsync(Tools(temp).Named("read_file"), """{"path":"link.txt"}""");
        Assert.True(result.IsError);
        Assert.DoesNotContain("TOP SECRET", result.Content);
        Assert.Contains("outside the workspace", result.Content);
    }

    [Fact]
    public async Task WriteFileCreatesFoldersAndRefusesEscapesIncludingDanglingLinks()
    {
        using var temp = new TempFolder();
        IReadOnlyList<AIFunction> tools = Tools(temp);
        ToolResult created = await ToolCalls.CallAsync(tools.Named("write_file"), """{"path":"deep/er/new.txt","content":"a\nb\n"}""");
        Assert.Equal("created deep/er/new.txt (2 lines)", created.Content);
        Assert.Equal("a\nb\n", File.ReadAllText(temp.InRoot("deep/er/new.txt")));

        ToolResult overwritten = await ToolCalls.CallAsync(tools.Named("write_file"), """{"path":"deep/er/new.txt","content":"c"}""");
        Assert.Equal("overwrote deep/er/new.txt (1 lines)", overwritten.Content);
        Assert.Equal("c", File.ReadAllText(temp.InRoot("deep/er/new.txt")));

        ToolResult escaped = await ToolCalls.CallAsync(tools.Named("write_file"), """{"path":"../outside/evil.txt","content":"x"}""");
        Assert.True(escaped.IsError);
        Assert.False(File.Exists(Path.Combine(temp.Outside, "evil.txt")));

        File.CreateSymbolicLink(temp.InRoot("dangling"), Path.Combine(temp.Outside, "planted.txt"));
        ToolResult viaLink = await ToolCalls.CallAsync(tools.Named("write_file"), """{"path":"dangling","content":"x"}""");
        Assert.True(viaLink.IsError);
        Assert.False(File.Exists(Path.Combine(temp.Outside, "planted.txt")));
    }

    [Fact]
    public async Task WriteFilePreviewIsAUnifiedDiff()
    {
        using var temp = new TempFolder();
        temp.Write("f.txt", "keep\nold\n");
        var preview = await ((IApprovalPreview)Tools(temp).Named("write_file")).PreviewAsync(
            new AIFunctionArguments { ["path"] = "f.txt", ["content"] = "keep\nnew\n" }, CancellationToken.None);
        Assert.Equal("overwrite f.txt", preview.Summary);
        Assert.NotNull(preview.Diff);
        Assert.Contains("--- a/f.txt", preview.Diff);
        Assert.Contains("+++ b/f.txt", preview.Diff);
        Assert.Contains("@@", preview.Diff);
        Assert.Contains("\n-old", preview.Diff);
        Assert.Contains("\n+new", preview.Diff);
        Assert.Contains("\n keep", preview.Diff);
        Assert.Equal("keep\nold\n", File.ReadAllText(temp.InRoot("f.txt")));
    }

    [Fact]
    public async Task EditFileReplacesExactlyOnceOrAllAndReportsProblems()
    {
        using var temp = new TempFolder();
        AIFunction edit = Tools(temp).Named("edit_file");
        temp.Write("code.cs", "int a = 1;\nint b = 1;\nint a2 = 1;\n");

        ToolResult notUnique = await ToolCalls.CallAsync(edit, """{"path":"code.cs","old_string":"= 1;","new_string":"= 2;"}""");
        Assert.Equal("error: old_string occurs 3 times in code.cs; include more surrounding text to make it unique, or set replace_all to true",
            notUnique.Content);
        Assert.Equal("int a = 1;\nint b = 1;\nint a2 = 1;\n", File.ReadAllText(temp.InRoot("code.cs")));

        ToolResult once = await ToolCalls.CallAsync(edit, """{"path":"code.cs","old_string":"int b = 1;","new_string":"int b = 7;"}""");
        Assert.Equal("edited code.cs: 1 replacement", once.Content);
        Assert.Equal("int a = 1;\nint b = 7;\nint a2 = 1;\n", File.ReadAllText(temp.InRoot("code.cs")));

        ToolResult all = await ToolCalls.CallAsync(edit, """{"path":"code.cs","old_string":"= 1;","new_string":"= 0;","replace_all":true}""");
        Assert.Equal("edited code.cs: 2 replacements", all.Content);
        Assert.Equal("int a = 0;\nint b = 7;\nint a2 = 0;\n", File.ReadAllText(temp.InRoot("code.cs")));

        ToolResult missing = await ToolCalls.CallAsync(edit, """{"path":"code.cs","old_string":"int c","new_string":"int d"}""");
        Assert.Equal("error: old_string not found in code.cs", missing.Content);

        ToolResult same = await ToolCalls.CallAsync(edit, """{"path":"code.cs","old_string":"int a","new_string":"int a"}""");
        Assert.True(same.IsError);
        ToolResult noFile = await ToolCalls.CallAsync(edit, """{"path":"none.cs","old_string":"x","new_string":"y"}""");
        Assert.Equal("error: file 'none.cs' does not exist", noFile.Content);
    }

    [Fact]
    public async Task EditFileKeepsCrlfLineEndingsAndByteOrderMark()
    {
        using var temp = new TempFolder();
        File.WriteAllBytes(temp.InRoot("win.txt"), [0xEF, 0xBB, 0xBF, .. "a\r\nb\r\nc\r\n"u8.ToArray()]);
        ToolResult result = await ToolCalls.CallAsync(Tools(temp).Named("edit_file"), """{"path":"win.txt","old_string":"a\nb","new_string":"a\nB\nb"}""");
        Assert.False(result.IsError, result.Content);
        Assert.Equal([0xEF, 0xBB, 0xBF, .. "a\r\nB\r\nb\r\nc\r\n"u8.ToArray()], File.ReadAllBytes(temp.InRoot("win.txt")));
    }

    [Fact]
    public async Task EditPreviewShowsTheDiffAndFailsForAMissingString()
    {
        using var temp = new TempFolder();
        temp.Write("p.txt", "alpha\nbeta\ngamma\n");
        var previewer = (IApprovalPreview)Tools(temp).Named("edit_file");
        ApprovalPreview preview = await previewer.PreviewAsync(
            new AIFunctionArguments { ["path"] = "p.txt", ["old_string"] = "beta", ["new_string"] = "BETA" }, CancellationToken.None);
        Assert.Equal("edit p.txt", preview.Summary);
        Assert.Contains("\n-beta", preview.Diff);
        Assert.Contains("\n+BETA", preview.Diff);
        await Assert.ThrowsAsync<ToolFailureException>(async () => await previewer.PreviewAsync(
            new AIFunctionArguments { ["path"] = "p.txt", ["old_string"] = "delta", ["new_string"] = "x" }, CancellationToken.None));
    }

    [Fact]
    public async Task ListDirShowsFoldersFirstWithSizesAndLinks()
    {
        using var temp = new TempFolder();
        temp.Write("b.txt", "12345");
        temp.Write("a/inner.txt", "");
        File.CreateSymbolicLink(temp.InRoot("c-link"), "b.txt");
        ToolResult result = await ToolCalls.CallAsync(Tools(temp).Named("list_dir"), "{}");
        Assert.Equal("a/\nb.txt  (5 bytes)\nc-link -> b.txt\n", result.Content);
        ToolResult file = await ToolCalls.CallAsync(Tools(temp).Named("list_dir"), """{"path":"b.txt"}""");
        Assert.Equal("error: 'b.txt' is a file, not a folder", file.Content);
    }

    [Fact]
    public async Task GlobMatchesAcrossFoldersSkipsIgnoredFoldersAndOutsideLinks()
    {
        using var temp = new TempFolder();
        temp.Write("Program.cs", "");
        temp.Write("src/A.cs", "");
        temp.Write("src/deep/B.cs", "");
        temp.Write("src/readme.md", "");
        temp.Write("obj/Gen.cs", "");
        File.WriteAllText(Path.Combine(temp.Outside, "Secret.cs"), "");
        Directory.CreateSymbolicLink(temp.InRoot("outside-link"), temp.Outside);
        AIFunction glob = Tools(temp).Named("glob");

        Assert.Equal("Program.cs\nsrc/A.cs\nsrc/deep/B.cs\n", (await ToolCalls.CallAsync(glob, """{"pattern":"**/*.cs"}""")).Content);
        Assert.Equal("Program.cs\n", (await ToolCalls.CallAsync(glob, """{"pattern":"*.cs"}""")).Content);
        Assert.Equal("src/A.cs\nsrc/readme.md\n", (await ToolCalls.CallAsync(glob, """{"pattern":"src/*.{cs,md}"}""")).Content);
        Assert.Equal("src/deep/B.cs\n", (await ToolCalls.CallAsync(glob, """{"pattern":"*/B.cs","path":"src"}""")).Content);
        Assert.Equal("no files match '**/*.py'", (await ToolCalls.CallAsync(glob, """{"pattern":"**/*.py"}""")).Content);
    }

    [Fact]
    public void GlobPatternSemantics()
    {
        Assert.True(new GlobPattern("**/*.cs").IsMatch("a.cs"));
        Assert.True(new GlobPattern("**/*.cs").IsMatch("x/y/a.cs"));
        Assert.False(new GlobPattern("*.cs").IsMatch("x/a.cs"));
        Assert.True(new GlobPattern("src/**").IsMatch("src/a/b"));
        Assert.True(new GlobPattern("a?c.[tj]s").IsMatch("abc.ts"));
        Assert.False(new GlobPattern("a?c.[!tj]s").IsMatch("abc.ts"));
        Assert.False(new GlobPattern("a.cs").IsMatch("aXcs"));
        Assert.Throws<ToolFailureException>(() => new GlobPattern("{a,b"));
    }

    [Fact]
    public async Task GrepPrintsFileAndLineFiltersByGlobAndCapsResults()
    {
        using var temp = new TempFolder();
        temp.Write("src/a.cs", "class A {}\n// TODO: one\n");
        temp.Write("src/b.txt", "TODO: two\n");
        temp.Write("c.cs", "x\ny\n// todo three\n");
        File.WriteAllBytes(temp.InRoot("bin.dat"), [(byte)'T', (byte)'O', (byte)'D', (byte)'O', 0]);
        AIFunction grep = Tools(temp).Named("grep");

        Assert.Equal("c.cs:3: // todo three\nsrc/a.cs:2: // TODO: one\nsrc/b.txt:1: TODO: two\n",
            (await ToolCalls.CallAsync(grep, """{"pattern":"TODO","ignore_case":true}""")).Content);
        Assert.Equal("src/a.cs:2: // TODO: one\n", (await ToolCalls.CallAsync(grep, """{"pattern":"TODO","glob":"*.cs"}""")).Content);
        Assert.Equal("src/b.txt:1: TODO: two\n", (await ToolCalls.CallAsync(grep, """{"pattern":"^TODO","path":"src"}""")).Content);
        Assert.Equal("no matches for /nothing/", (await ToolCalls.CallAsync(grep, """{"pattern":"nothing"}""")).Content);

        AIFunction capped = Tools(temp, new CodingToolOptions { MaxGrepMatches = 1 }).Named("grep");
        string first = (await ToolCalls.CallAsync(capped, """{"pattern":"(?i)todo"}""")).Content;
        Assert.Equal("c.cs:3: // todo three\n[stopped at 1 matches; narrow the pattern, path or glob]\n", first);

        ToolResult invalid = await ToolCalls.CallAsync(grep, """{"pattern":"("}""");
        Assert.True(invalid.IsError);
        Assert.StartsWith("error: invalid regular expression", invalid.Content);
    }

    [Fact]
    public async Task GrepRegexTimeoutIsAnError()
    {
        using var temp = new TempFolder();
        temp.Write("evil.txt", new string('a', 5000) + "!\n");
        AIFunction grep = Tools(temp, new CodingToolOptions { RegexTimeout = TimeSpan.FromMilliseconds(20) }).Named("grep");
        ToolResult result = await ToolCalls.CallAsync(grep, """{"pattern":"^(a+)+$"}""");
        Assert.True(result.IsError);
        Assert.Contains("took longer than", result.Content);
    }
}
