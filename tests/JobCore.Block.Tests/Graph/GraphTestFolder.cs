using System.Text.Json;
using JobCore.Block.Graph;

namespace JobCore.Block.Tests.Graph;

/// <summary>A fresh temporary folder per test (deleted on dispose) plus helpers to make images in it.</summary>
internal sealed class GraphTestFolder : IAsyncDisposable
{
    public GraphTestFolder()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "jobcore-graph-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
        Graph = new BlockGraph();
    }

    public string Path { get; }

    public BlockGraph Graph { get; }

    public string File(string name) => System.IO.Path.Combine(Path, name);

    /// <summary>Creates a raw file of <paramref name="size"/> bytes filled with <paramref name="fill"/>.</summary>
    public string Raw(string name, int size, byte fill = 0)
    {
        string path = File(name);
        var data = new byte[size];
        Array.Fill(data, fill);
        System.IO.File.WriteAllBytes(path, data);
        return path;
    }

    public static string Json(string path) => JsonSerializer.Serialize(path);

    public async ValueTask DisposeAsync()
    {
        await Graph.DisposeAsync();
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
            // Best effort: a leftover temp folder must not fail the test.
        }
    }
}
