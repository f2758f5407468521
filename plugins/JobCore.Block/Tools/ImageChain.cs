using JobCore.Block.Graph;
using JobCore.Block.Nodes;
using JobCore.Block.Options;

namespace JobCore.Block.Tools;

/// <summary>
/// An image opened without a daemon the way qemu-img opens one: the top's format is probed from the qcow2 magic
/// (else raw) unless given, and the backing chain is opened by the block graph from the image headers (names
/// relative to the referring image's folder, read-only, formats from the headers or probed).
/// </summary>
internal sealed class ImageChain : IAsyncDisposable
{
    private static readonly byte[] Qcow2Magic = [0x51, 0x46, 0x49, 0xfb];

    private readonly BlockGraph _graph;

    private ImageChain(BlockGraph graph, BlockNode top)
    {
        _graph = graph;
        Top = top;
    }

    /// <summary>The top format node (reads fall through the chain).</summary>
    public BlockNode Top { get; }

    /// <summary>The layers, top first.</summary>
    public IReadOnlyList<BlockNode> Layers => [.. BackingChain.Layers(Top)];

    /// <summary>The host file of <paramref name="node"/> (as qemu-img map prints it).</summary>
    public static string? FilenameOf(BlockNode node) => BackingChain.TryGetFilename(node);

    /// <summary>Opens <paramref name="filename"/> and, when <paramref name="withBacking"/>, its whole backing chain.</summary>
    /// <param name="filename">The top image.</param>
    /// <param name="format"><c>raw</c>, <c>qcow2</c>, or null to probe.</param>
    /// <param name="readOnly">Open the top read-only (backing files always are).</param>
    /// <param name="withBacking">Open the backing chain too.</param>
    /// <param name="cancellationToken">Cancels the opening.</param>
    /// <exception cref="ImageToolException">Unknown format.</exception>
    /// <exception cref="BlockIOException">The top file cannot be opened.</exception>
    /// <exception cref="BlockGraphException">An image cannot be opened, its header is invalid, or a backing file is missing.</exception>
    public static async Task<ImageChain> OpenAsync(
        string filename, string? format, bool readOnly, bool withBacking, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(filename);
        if (format is not (null or "raw" or "qcow2"))
        {
            throw new ImageToolException($"Unknown file format '{format}' (jobctl opens raw and qcow2 images)");
        }

        if (format is null)
        {
            await using var probe = await FileNode.OpenAsync("probe", filename, readOnly: true, cancellationToken).ConfigureAwait(false);
            format = await ProbeFormatAsync(probe, cancellationToken).ConfigureAwait(false);
        }

        var file = BlockdevRef.Inline(new FileBlockdevOptions(filename) { ReadOnly = readOnly });
        BlockdevOptions options = format == "qcow2"
            ? new Qcow2BlockdevOptions(file) { NodeName = "image", ReadOnly = readOnly, BackingMode = withBacking ? BackingMode.FromHeader : BackingMode.None }
            : new RawBlockdevOptions(file) { NodeName = "image", ReadOnly = readOnly };
        var graph = new BlockGraph();
        try
        {
            return new ImageChain(graph, await graph.AddAsync(options, cancellationToken).ConfigureAwait(false));
        }
        catch
        {
            await graph.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Probes a file node: qcow2 when it starts with the qcow2 magic, else raw.</summary>
    public static async Task<string> ProbeFormatAsync(BlockNode file, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(file);
        if (file.Size < Qcow2Magic.Length)
        {
            return "raw";
        }

        var magic = new byte[Qcow2Magic.Length];
        await file.ReadAsync(0, magic, cancellationToken).ConfigureAwait(false);
        return magic.AsSpan().SequenceEqual(Qcow2Magic) ? "qcow2" : "raw";
    }

    /// <summary>Closes every node of the chain.</summary>
    public ValueTask DisposeAsync() => _graph.DisposeAsync();
}
