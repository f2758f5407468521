namespace JobCore.Tests;

[TestClass]
public sealed class LifecycleDocTests
{
    [TestMethod]
    public void Docs_lifecycle_md_is_generated_from_the_table()
    {
        var path = Path.Combine(RepoRoot(), "docs", "lifecycle.md");
        var generated = Lifecycle.ToMermaid();
        if (Environment.GetEnvironmentVariable("JOBCORE_WRITE_DOCS") == "1")
        {
            File.WriteAllText(path, generated);
        }

        Assert.IsTrue(File.Exists(path), $"{path} is missing; run with JOBCORE_WRITE_DOCS=1 to generate it");
        Assert.AreEqual(generated, File.ReadAllText(path), "docs/lifecycle.md and Lifecycle disagree; regenerate with JOBCORE_WRITE_DOCS=1");
    }

    [TestMethod]
    public void Diagram_has_one_arrow_per_allowed_transition()
    {
        var arrows = Lifecycle.ToMermaid().Split('\n').Count(l => l.Contains("-->", StringComparison.Ordinal));
        var edges = Lifecycle.Statuses.Sum(f => Lifecycle.Statuses.Count(t => Lifecycle.CanTransition(f, t)));
        Assert.AreEqual(edges, arrows);
        Assert.AreEqual(20, edges);
    }

    internal static string RepoRoot()
    {
        var dir = AppContext.BaseDirectory;
        while (dir is not null && !File.Exists(Path.Combine(dir, "JobCore.sln")))
        {
            dir = Path.GetDirectoryName(dir);
        }

        return dir ?? throw new InvalidOperationException("JobCore.sln not found above " + AppContext.BaseDirectory);
    }
}
