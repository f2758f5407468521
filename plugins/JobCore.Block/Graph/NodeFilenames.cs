using System.Globalization;
using System.Text;
using JobCore.Block.Nodes;

namespace JobCore.Block.Graph;

/// <summary>
/// The file names node queries show, as QEMU's <c>bdrv_refresh_filename</c> makes them: a file node's path; a format
/// or filter node's file child's name, unless its backing is not the one its header would open (given by reference,
/// or <c>"backing": null</c> although the header names one), in which case QEMU describes the node by its open
/// options: <c>json:{"backing": ..., "driver": "qcow2", "file": {"driver": "file", "filename": "/p/x.qcow2"}}</c>
/// (members sorted, QEMU's separators). Image headers never get these names (see <see cref="BackingChain.TryGetFilename"/>).
/// </summary>
internal static class NodeFilenames
{
    /// <summary>The name of <paramref name="node"/> in <c>query-named-block-nodes</c> (<c>file</c>, <c>image.filename</c>).</summary>
    public static string Of(BlockNode node) => node switch
    {
        FileNode file => file.Filename,
        Qcow2Node image when BackingOverridden(image) => "json:" + Render(OpenOptions(image)),
        _ when node.File is { } child => Of(child),
        _ => node.NodeName,
    };

    // QEMU's bdrv_backing_overridden.
    private static bool BackingOverridden(Qcow2Node image) =>
        image.Backing is { } backing
            ? !string.Equals(image.AutoBackingFile, Of(backing), StringComparison.Ordinal)
            : !string.IsNullOrEmpty(image.AutoBackingFile);

    // The options that would open the node as it is (QEMU's full_open_options: driver, children, file name).
    private static SortedDictionary<string, object?> OpenOptions(BlockNode node)
    {
        switch (node)
        {
            case FileNode file:
                return new(StringComparer.Ordinal) { ["driver"] = "file", ["filename"] = file.Filename };
            case FilterNode filter when filter is not BlkdebugNode:
                return OpenOptions(filter.Child); // implicit filters (mirror_top, copy-on-read) do not show
            default:
                var options = new SortedDictionary<string, object?>(StringComparer.Ordinal) { ["driver"] = node.DriverName };
                if (node.File is { } child)
                {
                    options[node is BlkdebugNode ? "image" : "file"] = OpenOptions(child);
                }

                if (node is Qcow2Node image && BackingOverridden(image))
                {
                    options["backing"] = image.Backing is { } backing ? OpenOptions(backing) : null;
                }

                return options;
        }
    }

    // QEMU's qobject_to_json: ", " and ": " separators, non-ASCII and control characters as \uXXXX.
    private static string Render(SortedDictionary<string, object?> options)
    {
        var text = new StringBuilder();
        Append(text, options);
        return text.ToString();
    }

    private static void Append(StringBuilder text, object? value)
    {
        switch (value)
        {
            case null:
                text.Append("null");
                break;
            case string s:
                AppendString(text, s);
                break;
            case SortedDictionary<string, object?> members:
                text.Append('{');
                bool first = true;
                foreach ((string key, object? member) in members)
                {
                    text.Append(first ? string.Empty : ", ");
                    first = false;
                    AppendString(text, key);
                    text.Append(": ");
                    Append(text, member);
                }

                text.Append('}');
                break;
            default:
                throw new ArgumentException($"Unexpected option value {value}", nameof(value));
        }
    }

    private static void AppendString(StringBuilder text, string s)
    {
        text.Append('"');
        foreach (char c in s)
        {
            switch (c)
            {
                case '"':
                    text.Append("\\\"");
                    break;
                case '\\':
                    text.Append("\\\\");
                    break;
                case '\b':
                    text.Append("\\b");
                    break;
                case '\f':
                    text.Append("\\f");
                    break;
                case '\n':
                    text.Append("\\n");
                    break;
                case '\r':
                    text.Append("\\r");
                    break;
                case '\t':
                    text.Append("\\t");
                    break;
                default:
                    if (c < 0x20 || c > 0x7e)
                    {
                        text.Append("\\u").Append(((int)c).ToString("X4", CultureInfo.InvariantCulture));
                    }
                    else
                    {
                        text.Append(c);
                    }

                    break;
            }
        }

        text.Append('"');
    }
}
