using JobCore.Block.Nodes;

namespace JobCore.Block.Tools;

/// <summary>One opened image of a chain: its format node, the file node under it, and its name as qemu-img shows it.</summary>
/// <param name="Node">The format node (raw or qcow2).</param>
/// <param name="File">The host file node.</param>
/// <param name="Filename">The file name: as given for the top, combined with the referring image's folder for backing files.</param>
/// <param name="Format">The format name.</param>
internal sealed record ImageLayer(BlockNode Node, FileNode File, string Filename, string Format);

/// <summary>
/// An image opened without a daemon the way qemu-img opens one: format probed from the qcow2 magic (else raw) unless
/// given, backing files resolved against the referring image's folder and opened read-only with the format recorded
/// in the header (probed when absent).
/// </summary>
internal sealed class ImageChain : IAsyncDisposable
{
    private const int MaxChainLength = 256;
    private static readonly byte[] Qcow2Magic = [0x51, 0x46, 0x49, 0xfb];

    private readonly List<ImageLayer> _layers;

    private ImageChain(List<ImageLayer> layers) => _layers = layers;

    /// <summary>The layers, top first.</summary>
    public IReadOnlyList<ImageLayer> Layers => _layers;

    /// <summary>The top format node (reads fall through the chain).</summary>
    public BlockNode Top => _layers[0].Node;

    /// <summary>The file name of the layer owning <paramref name="node"/> (as qemu-img map prints it).</summary>
    public string? FilenameOf(BlockNode node) => _layers.Find(l => ReferenceEquals(l.Node, node))?.Filename;

    /// <summary>Opens <paramref name="filename"/> and, when <paramref name="withBacking"/>, its whole backing chain.</summary>
    /// <param name="filename">The top image.</param>
    /// <param name="format"><c>raw</c>, <c>qcow2</c>, or null to probe.</param>
    /// <param name="readOnly">Open the top read-only (backing files always are).</param>
    /// <param name="withBacking">Open the backing chain too.</param>
    /// <param name="cancellationToken">Cancels the opening.</param>
    /// <exception cref="ImageToolException">Unknown format, or a loop in the chain.</exception>
    /// <exception cref="BlockIOException">A file cannot be opened.</exception>
    /// <exception cref="BlockFormatException">An image header is invalid or uses an unsupported feature.</exception>
    public static async Task<ImageChain> OpenAsync(
        string filename, string? format, bool readOnly, bool withBacking, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(filename);
        var layers = new List<ImageLayer>();
        var chain = new ImageChain(layers);
        try
        {
            var seen = new HashSet<string>(StringComparer.Ordinal);
            var name = filename;
            var fmt = format;
            while (true)
            {
                if (!seen.Add(Path.GetFullPath(name)) || layers.Count >= MaxChainLength)
                {
                    throw new ImageToolException($"Backing file '{name}' creates an infinite loop.");
                }

                var layer = await OpenLayerAsync(name, fmt, readOnly || layers.Count > 0, layers.Count, cancellationToken).ConfigureAwait(false);
                if (layers.Count > 0)
                {
                    ((Qcow2Node)layers[^1].Node).SetBackingNode(layer.Node);
                }

                layers.Add(layer);
                if (!withBacking || layer.Node is not Qcow2Node { BackingFileName: { } backing } qcow2)
                {
                    return chain;
                }

                name = CombineBackingPath(name, backing);
                fmt = qcow2.BackingFormat;
            }
        }
        catch
        {
            await chain.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// QEMU's <c>path_combine</c>: a relative backing name is taken relative to the folder of the image naming it
    /// (keeping that image's name relative when it was given relative).
    /// </summary>
    public static string CombineBackingPath(string imageName, string backingName)
    {
        ArgumentNullException.ThrowIfNull(imageName);
        ArgumentNullException.ThrowIfNull(backingName);
        if (backingName.StartsWith('/') || backingName.Contains("://", StringComparison.Ordinal))
        {
            return backingName;
        }

        var slash = imageName.LastIndexOf('/');
        return slash < 0 ? backingName : string.Concat(imageName.AsSpan(0, slash + 1), backingName);
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

    private static async Task<ImageLayer> OpenLayerAsync(string name, string? format, bool readOnly, int depth, CancellationToken cancellationToken)
    {
        if (format is not (null or "raw" or "qcow2"))
        {
            throw new ImageToolException($"Unknown file format '{format}' (jobctl opens raw and qcow2 images)");
        }

        var nodeName = depth == 0 ? "image" : $"backing{depth}";
        var file = await FileNode.OpenAsync(nodeName + "-file", name, readOnly, cancellationToken).ConfigureAwait(false);
        try
        {
            format ??= await ProbeFormatAsync(file, cancellationToken).ConfigureAwait(false);
            BlockNode node = format == "qcow2"
                ? await Qcow2Node.OpenAsync(nodeName, file, readOnly, cancellationToken).ConfigureAwait(false)
                : await RawNode.OpenAsync(nodeName, file, readOnly, cancellationToken).ConfigureAwait(false);
            return new ImageLayer(node, file, name, format);
        }
        catch
        {
            await file.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Closes the format nodes top first, then their files.</summary>
    public async ValueTask DisposeAsync()
    {
        foreach (var layer in _layers)
        {
            await layer.Node.DisposeAsync().ConfigureAwait(false);
        }

        foreach (var layer in _layers)
        {
            await layer.File.DisposeAsync().ConfigureAwait(false);
        }

        _layers.Clear();
    }
}
