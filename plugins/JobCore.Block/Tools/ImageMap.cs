using System.Globalization;
using System.Text;
using JobCore.Block.Nodes;

namespace JobCore.Block.Tools;

/// <summary>One merged extent of <c>qemu-img map</c> output.</summary>
/// <param name="Start">Guest offset.</param>
/// <param name="Length">Length in bytes.</param>
/// <param name="Depth">Backing depth of the deciding layer.</param>
/// <param name="Present">Allocated in some layer.</param>
/// <param name="Zero">Reads as zeroes.</param>
/// <param name="Data">Has stored data.</param>
/// <param name="Offset">Host offset in <paramref name="Filename"/>, when known.</param>
/// <param name="Filename">The file of the deciding layer (only with an offset).</param>
internal sealed record MapEntry(long Start, long Length, int Depth, bool Present, bool Zero, bool Data, long? Offset, string? Filename);

/// <summary>
/// <c>qemu-img map</c>: the allocation of a whole backing chain as merged extents, printed as qemu-img's JSON array
/// or its human table.
/// </summary>
internal static class ImageMap
{
    private const long MaxQuery = 1L << 30;

    /// <summary>Builds the merged extent list of <paramref name="top"/>'s chain.</summary>
    /// <param name="top">The top node of the chain.</param>
    /// <param name="filenameOf">The file name to show for a layer.</param>
    /// <param name="cancellationToken">Cancels the walk.</param>
    public static async Task<IReadOnlyList<MapEntry>> BuildAsync(
        BlockNode top, Func<BlockNode, string?> filenameOf, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(top);
        ArgumentNullException.ThrowIfNull(filenameOf);
        var entries = new List<MapEntry>();
        MapEntry? current = null;
        for (long offset = 0; offset < top.Size;)
        {
            var e = await ChainStatus.GetAsync(top, offset, Math.Min(MaxQuery, top.Size - offset), cancellationToken)
                .ConfigureAwait(false);
            var next = new MapEntry(e.Start, e.Length, e.Depth, e.Present, e.Zero, e.Data, e.Offset,
                e.Offset is null ? null : filenameOf(e.Layer));
            if (current is not null && Mergeable(current, next))
            {
                current = current with { Length = current.Length + next.Length };
            }
            else
            {
                if (current is not null)
                {
                    entries.Add(current);
                }

                current = next;
            }

            offset += e.Length;
        }

        if (current is not null)
        {
            entries.Add(current);
        }

        return entries;
    }

    private static bool Mergeable(MapEntry current, MapEntry next) =>
        current.Zero == next.Zero
        && current.Data == next.Data
        && current.Depth == next.Depth
        && current.Present == next.Present
        && current.Filename == next.Filename
        && current.Offset.HasValue == next.Offset.HasValue
        && (current.Offset is not { } o || o + current.Length == next.Offset);

    /// <summary>qemu-img's <c>--output json</c> text (ends with a newline).</summary>
    public static string ToJson(IReadOnlyList<MapEntry> entries)
    {
        ArgumentNullException.ThrowIfNull(entries);
        var sb = new StringBuilder("[");
        for (var i = 0; i < entries.Count; i++)
        {
            var e = entries[i];
            if (i > 0)
            {
                sb.Append(",\n");
            }

            sb.Append(CultureInfo.InvariantCulture,
                $"{{ \"start\": {e.Start}, \"length\": {e.Length}, \"depth\": {e.Depth}, \"present\": {Bool(e.Present)}, \"zero\": {Bool(e.Zero)}, \"data\": {Bool(e.Data)}");
            if (e.Offset is { } offset)
            {
                sb.Append(CultureInfo.InvariantCulture, $", \"offset\": {offset}");
            }

            sb.Append('}');
        }

        return sb.Append("]\n").ToString();
    }

    /// <summary>qemu-img's human table: one line per data extent with its host offset and file.</summary>
    /// <exception cref="ImageToolException">A data extent has no host offset (compressed clusters), as qemu-img refuses it.</exception>
    public static string ToHuman(IReadOnlyList<MapEntry> entries)
    {
        ArgumentNullException.ThrowIfNull(entries);
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"{"Offset",-16}{"Length",-16}{"Mapped to",-16}File\n");
        foreach (var e in entries.Where(e => e.Data))
        {
            if (e.Offset is not { } offset)
            {
                // Compressed clusters have data but no host offset of their own.
                throw new ImageToolException("File contains external, encrypted or compressed clusters.");
            }

            sb.Append(CultureInfo.InvariantCulture, $"{Hex(e.Start),-16}{Hex(e.Length),-16}{Hex(offset),-16}{e.Filename}\n");
        }

        return sb.ToString();
    }

    /// <summary>C's <c>%#x</c>: <c>0</c> for zero, else <c>0x</c> and lower-case hex digits.</summary>
    private static string Hex(long value) =>
        value == 0 ? "0" : "0x" + value.ToString("x", CultureInfo.InvariantCulture);

    private static string Bool(bool value) => value ? "true" : "false";
}
