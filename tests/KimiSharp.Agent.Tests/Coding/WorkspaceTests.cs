using KimiSharp.Agent.Coding;

namespace KimiSharp.Agent.Tests.Coding;

public class WorkspaceTests
{
    [Fact]
    public void ResolvesPathsInsideTheRoot()
    {
        using var temp = new TempFolder();
        string root = temp.Workspace.Root;
        Assert.Equal(Path.Combine(root, "src", "a.cs"), temp.Workspace.Resolve("src/a.cs"));
        Assert.Equal(Path.Combine(root, "b.txt"), temp.Workspace.Resolve("src/../b.txt"));
        Assert.Equal(root, temp.Workspace.Resolve("."));
        Assert.Equal(root, temp.Workspace.Resolve(""));
        Assert.Equal(Path.Combine(root, "x"), temp.Workspace.Resolve(Path.Combine(root, "x")));
        Assert.Equal("src/a.cs", temp.Workspace.Relative(Path.Combine(root, "src", "a.cs")));
    }

    [Theory]
    [InlineData("../outside/secret.txt")]
    [InlineData("..")]
    [InlineData("src/../../outside")]
    [InlineData("./../ws2/file")]
    public void RefusesDotDotEscapes(string path)
    {
        using var temp = new TempFolder();
        var e = Assert.Throws<WorkspaceEscapeException>(() => temp.Workspace.Resolve(path));
        Assert.Contains("outside the workspace", e.Message);
        Assert.False(temp.Workspace.Contains(path));
    }

    [Fact]
    public void RefusesAbsolutePathsOutsideTheRootIncludingASiblingWithTheSamePrefix()
    {
        using var temp = new TempFolder();
        Assert.Throws<WorkspaceEscapeException>(() => temp.Workspace.Resolve("/etc/passwd"));
        Assert.Throws<WorkspaceEscapeException>(() => temp.Workspace.Resolve(Path.Combine(temp.Outside, "a")));
        // "<root>2" starts with the root's text but is another folder.
        Assert.Throws<WorkspaceEscapeException>(() => temp.Workspace.Resolve(temp.Workspace.Root + "2/a"));
    }

    [Fact]
    public void RefusesSymlinksToOutsideFilesAndDirectories()
    {
        using var temp = new TempFolder();
        File.WriteAllText(Path.Combine(temp.Outside, "secret.txt"), "secret");
        File.CreateSymbolicLink(temp.InRoot("file-link"), Path.Combine(temp.Outside, "secret.txt"));
        Directory.CreateSymbolicLink(temp.InRoot("dir-link"), temp.Outside);
        Directory.CreateDirectory(temp.InRoot("sub"));
        File.CreateSymbolicLink(temp.InRoot("sub/relative-link"), "../../outside/secret.txt");

        Assert.Throws<WorkspaceEscapeException>(() => temp.Workspace.Resolve("file-link"));
        Assert.Throws<WorkspaceEscapeException>(() => temp.Workspace.Resolve("dir-link"));
        Assert.Throws<WorkspaceEscapeException>(() => temp.Workspace.Resolve("dir-link/secret.txt"));
        Assert.Throws<WorkspaceEscapeException>(() => temp.Workspace.Resolve("dir-link/not-yet-created.txt"));
        Assert.Throws<WorkspaceEscapeException>(() => temp.Workspace.Resolve("sub/relative-link"));
    }

    [Fact]
    public void RefusesDanglingSymlinksThatPointOutside()
    {
        using var temp = new TempFolder();
        string missing = Path.Combine(temp.Outside, "does-not-exist.txt");
        File.CreateSymbolicLink(temp.InRoot("dangling"), missing);
        Directory.CreateSymbolicLink(temp.InRoot("dangling-dir"), Path.Combine(temp.Outside, "no-such-dir"));

        var e = Assert.Throws<WorkspaceEscapeException>(() => temp.Workspace.Resolve("dangling"));
        Assert.Contains("symlink", e.Message);
        Assert.Throws<WorkspaceEscapeException>(() => temp.Workspace.Resolve("dangling-dir/new.txt"));
    }

    [Fact]
    public void FollowsChainsOfLinksAndAllowsLinksThatStayInside()
    {
        using var temp = new TempFolder();
        temp.Write("real/data.txt", "x");
        Directory.CreateSymbolicLink(temp.InRoot("alias"), "real");
        File.CreateSymbolicLink(temp.InRoot("hop1"), temp.InRoot("hop2"));
        File.CreateSymbolicLink(temp.InRoot("hop2"), Path.Combine(temp.Outside, "x"));
        File.CreateSymbolicLink(temp.InRoot("inside-dangling"), "not-there-yet.txt");

        Assert.Equal(temp.InRoot("alias/data.txt"), temp.Workspace.Resolve("alias/data.txt"));
        Assert.Equal(temp.InRoot("inside-dangling"), temp.Workspace.Resolve("inside-dangling"));
        Assert.Throws<WorkspaceEscapeException>(() => temp.Workspace.Resolve("hop1"));
    }

    [Fact]
    public void AnAbsolutePathThroughAnotherNameForTheRootIsInside()
    {
        using var temp = new TempFolder();
        string alias = Path.Combine(temp.Path, "alias");
        Directory.CreateSymbolicLink(alias, temp.Root);
        Assert.Equal(temp.InRoot("file.txt"), temp.Workspace.Resolve(Path.Combine(alias, "file.txt")));
        Assert.Equal(temp.Root, new Workspace(alias).Root);
        Assert.Throws<WorkspaceEscapeException>(() => temp.Workspace.Resolve(Path.Combine(alias, "..", "outside")));
    }

    [Fact]
    public void LinkLoopIsAnEscapeErrorNotAHang()
    {
        using var temp = new TempFolder();
        File.CreateSymbolicLink(temp.InRoot("loop-a"), temp.InRoot("loop-b"));
        File.CreateSymbolicLink(temp.InRoot("loop-b"), temp.InRoot("loop-a"));
        var e = Assert.Throws<WorkspaceEscapeException>(() => temp.Workspace.Resolve("loop-a"));
        Assert.Contains("too many levels of symlinks", e.Message);
    }

    [Fact]
    public void RootMustExist()
    {
        Assert.Throws<DirectoryNotFoundException>(() => new Workspace(Path.Combine(Path.GetTempPath(), "kimi-no-such-root-" + Guid.NewGuid())));
    }
}
