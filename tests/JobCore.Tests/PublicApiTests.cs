using System.Reflection;

namespace JobCore.Tests;

/// <summary>The public surface of the core is checked in (docs/api/JobCore.txt); a change must update it on purpose.</summary>
[TestClass]
public sealed class PublicApiTests
{
    [TestMethod]
    public void Public_api_matches_the_checked_in_listing()
    {
        var path = Path.Combine(LifecycleDocTests.RepoRoot(), "docs", "api", "JobCore.txt");
        var listing = Render(typeof(JobEngine).Assembly);
        if (Environment.GetEnvironmentVariable("JOBCORE_WRITE_DOCS") == "1")
        {
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            File.WriteAllText(path, listing);
        }

        Assert.IsTrue(File.Exists(path), $"{path} is missing; run with JOBCORE_WRITE_DOCS=1");
        Assert.AreEqual(File.ReadAllText(path), listing, "public API changed; review and regenerate with JOBCORE_WRITE_DOCS=1");
    }

    internal static string Render(Assembly assembly)
    {
        const BindingFlags flags = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;
        var lines = new List<string>();
        foreach (var type in assembly.GetExportedTypes().OrderBy(t => t.FullName, StringComparer.Ordinal))
        {
            lines.Add($"{Kind(type)} {type.FullName}");
            var members = type.GetMembers(flags)
                .Where(m => m switch
                {
                    MethodBase mb => (mb.IsPublic || mb.IsFamily || mb.IsFamilyOrAssembly) && !(mb is MethodInfo mi && mi.IsSpecialName),
                    PropertyInfo p => p.GetAccessors(nonPublic: true).Any(a => a.IsPublic || a.IsFamily || a.IsFamilyOrAssembly),
                    FieldInfo f => f.IsPublic || f.IsFamily,
                    EventInfo => true,
                    _ => false,
                })
                .Select(m => "  " + m switch
                {
                    PropertyInfo p => $"property {p.PropertyType.Name} {p.Name}",
                    FieldInfo f => $"field {f.FieldType.Name} {f.Name}",
                    _ => m.ToString()!,
                })
                .Order(StringComparer.Ordinal);
            lines.AddRange(members);
        }

        return string.Join('\n', lines) + "\n";
    }

    private static string Kind(Type t) =>
        t.IsEnum ? "enum" : t.IsInterface ? "interface" : t.IsValueType ? "struct" : t.IsAbstract && t.IsSealed ? "static class" : t.IsAbstract ? "abstract class" : "class";
}
