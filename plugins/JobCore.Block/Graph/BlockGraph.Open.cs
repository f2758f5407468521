using System.Buffers.Binary;
using JobCore.Block.Nodes;
using JobCore.Block.Options;

namespace JobCore.Block.Graph;

public sealed partial class BlockGraph
{
    private const uint Qcow2Magic = 0x514649fb; // "QFI\xfb"
    private const string BackingPrefix = "Could not open backing file: ";

    /// <summary>The nodes opened (in order) and names taken by one <c>blockdev-add</c>, for roll-back.</summary>
    private sealed class OpenContext
    {
        public List<BlockNode> Opened { get; } = [];

        public HashSet<string> Reserved { get; } = new(StringComparer.Ordinal);
    }

    private async ValueTask<BlockNode> OpenAsync(BlockdevOptions options, OpenContext context, CancellationToken cancellationToken)
    {
        string name = ReserveName(options.NodeName, context);

        // QEMU names a protocol driver such as blkdebug before it opens its child, so it lists the child first.
        long? order = options is BlkdebugBlockdevOptions ? TakeOrder() : null;
        BlockNode node = options switch
        {
            FileBlockdevOptions file => await OpenFileAsync(name, file.Filename, file.ReadOnly, cancellationToken).ConfigureAwait(false),
            RawBlockdevOptions raw => await OpenRawAsync(name, raw, context, cancellationToken).ConfigureAwait(false),
            Qcow2BlockdevOptions qcow2 => await OpenQcow2Async(name, qcow2, context, cancellationToken).ConfigureAwait(false),
            BlkdebugBlockdevOptions blkdebug => BlkdebugNode.Create(name,
                await OpenChildAsync(blkdebug.Image, context, cancellationToken).ConfigureAwait(false),
                blkdebug.InjectError, blkdebug.ReadOnly),
            _ => throw new BlockGraphException($"Block driver '{options.Driver}' is not supported by JobCore"),
        };
        node.DetectZeroes = options.DetectZeroes;
        Register(node, context, order);
        return node;
    }

    private async ValueTask<BlockNode> OpenRawAsync(string name, RawBlockdevOptions options, OpenContext context, CancellationToken cancellationToken)
    {
        BlockNode file = await OpenChildAsync(options.File, context, cancellationToken).ConfigureAwait(false);
        return await RawNode.OpenAsync(name, file, options.ReadOnly, cancellationToken).ConfigureAwait(false);
    }

    private async ValueTask<BlockNode> OpenQcow2Async(string name, Qcow2BlockdevOptions options, OpenContext context, CancellationToken cancellationToken)
    {
        BlockNode file = await OpenChildAsync(options.File, context, cancellationToken).ConfigureAwait(false);
        Qcow2Node image = await OpenQcow2OverAsync(name, file, options.ReadOnly, cancellationToken).ConfigureAwait(false);

        // Registered before its backing opens, so a failure below closes it too.
        Register(image, context);
        switch (options.BackingMode)
        {
            case BackingMode.FromHeader:
                if (image.BackingFileName is not null)
                {
                    AttachHeaderBacking(image, await OpenBackingFromHeaderAsync(image, context, 1, cancellationToken).ConfigureAwait(false));
                }

                break;
            case BackingMode.Given:
                BlockNode backing = await OpenGivenBackingAsync(options.Backing!, context, cancellationToken).ConfigureAwait(false);
                ThrowIfCycle(image, backing);
                image.SetBackingNode(backing);
                break;
            default:
                break;
        }

        return image;
    }

    // QEMU's bdrv_open_backing_file: the image's auto_backing_file becomes the backing node's file name, so the node
    // queries show plain file names for a chain opened from the headers.
    private static void AttachHeaderBacking(Qcow2Node image, BlockNode backing)
    {
        image.SetBackingNode(backing);
        image.AutoBackingFile = NodeFilenames.Of(backing);
    }

    /// <summary>QEMU's refusal of a backing edge that would close a loop (also via the overlay's own file child).</summary>
    private static void ThrowIfCycle(Qcow2Node image, BlockNode backing)
    {
        if (Reachable(backing).Contains(image) || (image.File is { } file && Reachable(file).Contains(backing)))
        {
            throw new BlockGraphException($"Making '{backing.NodeName}' a backing child of '{image.NodeName}' would create a cycle");
        }
    }

    private async ValueTask<BlockNode> OpenGivenBackingAsync(BlockdevRef backing, OpenContext context, CancellationToken cancellationToken)
    {
        try
        {
            return await OpenChildAsync(backing, context, cancellationToken).ConfigureAwait(false);
        }
        catch (BlockGraphException e)
        {
            throw new BlockGraphException(BackingPrefix + e.Message, e);
        }
    }

    private async ValueTask<BlockNode> OpenChildAsync(BlockdevRef child, OpenContext context, CancellationToken cancellationToken)
    {
        if (child.Definition is { } definition)
        {
            return await OpenAsync(definition, context, cancellationToken).ConfigureAwait(false);
        }

        string reference = child.Reference!;
        lock (_lock)
        {
            if (_nodes.TryGetValue(reference, out NodeEntry? entry))
            {
                return entry.Node;
            }
        }

        throw new BlockGraphException($"Cannot find device='{reference}' nor node-name='{reference}'");
    }

    /// <summary>
    /// QEMU's <c>bdrv_open_backing_file</c> for a qcow2 node opened without its backing (<c>"backing": null</c>): opens
    /// the chain its header names (read-only, implicit <c>#blockNNN</c> names, as blockdev-add would have) and
    /// attaches it. drive-mirror <c>mode=existing</c> does this when its job succeeds. A node that already has a
    /// backing node, or whose header names none, is left alone; on failure nothing stays open.
    /// </summary>
    /// <param name="image">A qcow2 node of this graph.</param>
    /// <param name="cancellationToken">Cancels the wait for other graph changes and the open.</param>
    /// <exception cref="BlockGraphException"><c>Could not open backing file: ...</c>.</exception>
    public async ValueTask OpenBackingChainAsync(Qcow2Node image, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(image);
        await _mutation.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ThrowIfDisposed();
            lock (_lock)
            {
                RequireRegisteredLocked(image);
            }

            if (image.Backing is not null || image.BackingFileName is null)
            {
                return;
            }

            var context = new OpenContext();
            try
            {
                AttachHeaderBacking(image, await OpenBackingFromHeaderAsync(image, context, 1, cancellationToken).ConfigureAwait(false));
            }
            catch
            {
                await RollBackAsync(context).ConfigureAwait(false);
                throw;
            }
        }
        finally
        {
            _mutation.Release();
        }
    }

    private async ValueTask<BlockNode> OpenBackingFromHeaderAsync(Qcow2Node overlay, OpenContext context, int depth, CancellationToken cancellationToken)
    {
        try
        {
            string spec = overlay.BackingFileName!;
            if (depth > MaxChainLength)
            {
                throw new BlockGraphException($"Backing chain is longer than {MaxChainLength} images (does '{spec}' loop back?)");
            }

            if (spec.StartsWith("json:", StringComparison.Ordinal))
            {
                throw new BlockGraphException($"Backing file name '{spec}' uses a json: description, which JobCore does not support");
            }

            string? overlayFile = BackingChain.TryGetFilename(overlay);
            string path = overlayFile is null ? spec : BackingChain.ResolveRelativeTo(overlayFile, spec);
            FileNode file = await OpenFileAsync(ReserveName(null, context), path, readOnly: true, cancellationToken).ConfigureAwait(false);
            Register(file, context);
            string format = overlay.BackingFormat ?? await ProbeFormatAsync(file, cancellationToken).ConfigureAwait(false);
            string name = ReserveName(null, context);
            switch (format)
            {
                case "raw":
                    BlockNode raw = await RawNode.OpenAsync(name, file, readOnly: true, cancellationToken).ConfigureAwait(false);
                    Register(raw, context);
                    return raw;
                case "qcow2":
                    Qcow2Node image = await OpenQcow2OverAsync(name, file, readOnly: true, cancellationToken).ConfigureAwait(false);
                    Register(image, context);
                    if (image.BackingFileName is not null)
                    {
                        AttachHeaderBacking(image, await OpenBackingFromHeaderAsync(image, context, depth + 1, cancellationToken).ConfigureAwait(false));
                    }

                    return image;
                case "file":
                    return file;
                default:
                    throw new BlockGraphException($"Backing format '{format}' of '{path}' is not supported by JobCore (supported: qcow2, raw)");
            }
        }
        catch (BlockGraphException e)
        {
            throw new BlockGraphException(BackingPrefix + e.Message, e);
        }
    }

    private static async ValueTask<FileNode> OpenFileAsync(string name, string filename, bool readOnly, CancellationToken cancellationToken)
    {
        try
        {
            return await FileNode.OpenAsync(name, filename, readOnly, cancellationToken).ConfigureAwait(false);
        }
        catch (BlockIOException e)
        {
            throw new BlockGraphException(e.Message, e);
        }
    }

    private static async ValueTask<Qcow2Node> OpenQcow2OverAsync(string name, BlockNode file, bool readOnly, CancellationToken cancellationToken)
    {
        using IDisposable suspended = SuspendInjectionBelow(file);
        try
        {
            // QEMU's first check, with its text; the driver then validates the rest of the header.
            if (await ProbeFormatAsync(file, cancellationToken).ConfigureAwait(false) != "qcow2")
            {
                throw new BlockGraphException("Image is not in qcow2 format");
            }

            return await Qcow2Node.OpenAsync(name, file, readOnly, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is BlockFormatException or BlockIOException)
        {
            throw new BlockGraphException(e.Message, e);
        }
    }

    // QEMU probes a backing file without a format: qcow2 by its magic, anything else is raw.
    private static async ValueTask<string> ProbeFormatAsync(BlockNode file, CancellationToken cancellationToken)
    {
        if (file.Size < 4)
        {
            return "raw";
        }

        byte[] magic = new byte[4];
        try
        {
            await file.ReadAsync(0, magic, cancellationToken).ConfigureAwait(false);
        }
        catch (BlockIOException e)
        {
            throw new BlockGraphException(e.Message, e);
        }

        return BinaryPrimitives.ReadUInt32BigEndian(magic) == Qcow2Magic ? "qcow2" : "raw";
    }

    private string ReserveName(string? requested, OpenContext context)
    {
        lock (_lock)
        {
            if (requested is null)
            {
                string generated;
                do
                {
                    // QEMU's shape: "#block", a counter, then two random digits.
                    generated = $"#block{_nextAutoName++}{Random.Shared.Next(100):D2}";
                }
                while (_nodes.ContainsKey(generated) || context.Reserved.Contains(generated));

                context.Reserved.Add(generated);
                return generated;
            }

            if (!IsWellFormedId(requested))
            {
                throw new BlockGraphException($"Invalid node-name: '{requested}'");
            }

            if (_backends.ContainsKey(requested))
            {
                throw new BlockGraphException($"node-name={requested} is conflicting with a device id");
            }

            if (_nodes.ContainsKey(requested) || context.Reserved.Contains(requested))
            {
                throw new BlockGraphException($"Duplicate nodes with node-name='{requested}'");
            }

            if (requested.Length >= NodeNameLimit)
            {
                throw new BlockGraphException("Node name too long");
            }

            context.Reserved.Add(requested);
            return requested;
        }
    }

    /// <summary>QEMU's <c>id_wellformed</c>: a letter, then letters, digits, '-', '.', '_'.</summary>
    internal static bool IsWellFormedId(string id)
    {
        if (id.Length == 0 || !char.IsAsciiLetter(id[0]))
        {
            return false;
        }

        foreach (char c in id.AsSpan(1))
        {
            if (!char.IsAsciiLetterOrDigit(c) && c is not '-' and not '.' and not '_')
            {
                return false;
            }
        }

        return true;
    }

    private long TakeOrder()
    {
        lock (_lock)
        {
            return _nextOrder++;
        }
    }

    private void Register(BlockNode node, OpenContext? context, long? order = null)
    {
        lock (_lock)
        {
            if (_nodes.TryGetValue(node.NodeName, out NodeEntry? existing))
            {
                if (ReferenceEquals(existing.Node, node))
                {
                    return;
                }

                throw new BlockGraphException($"Duplicate nodes with node-name='{node.NodeName}'");
            }

            _nodes.Add(node.NodeName, new NodeEntry(node, order ?? _nextOrder++));
            context?.Reserved.Remove(node.NodeName);
        }

        context?.Opened.Add(node);
    }

    private async ValueTask RollBackAsync(OpenContext context)
    {
        lock (_lock)
        {
            foreach (BlockNode node in context.Opened)
            {
                if (EntryOf(node) is not null)
                {
                    _nodes.Remove(node.NodeName);
                }
            }
        }

        // Newest first: parents were opened after their children.
        for (int i = context.Opened.Count - 1; i >= 0; i--)
        {
            await CloseAsync(context.Opened[i]).ConfigureAwait(false);
        }
    }
}
