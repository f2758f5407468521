using System.Text.Json.Nodes;
using JobCore.Block.Nodes;
using JobCore.Block.Options;
using JobCore.Qmp.Json;

namespace JobCore.Block.Graph;

/// <summary>
/// The file names node queries show, as QEMU's <c>bdrv_refresh_filename</c> makes them: a file node's path; a format
/// or filter node's file child's name, unless its backing is not the one its header would open (given by reference,
/// or <c>"backing": null</c> although the header names one), in which case QEMU describes the node by its open
/// options: <c>json:{"backing": ..., "driver": "qcow2", "file": {"driver": "file", "filename": "/p/x.qcow2"}}</c>
/// (members in QEMU's QDict order, written as QEMU's monitor writes JSON). Image headers never get these names (see <see cref="BackingChain.TryGetFilename"/>).
/// </summary>
internal static class NodeFilenames
{
    /// <summary>The name of <paramref name="node"/> in <c>query-named-block-nodes</c> (<c>file</c>, <c>image.filename</c>).</summary>
    public static string Of(BlockNode node) => node switch
    {
        FileNode file => file.Filename,
        BlkdebugNode => Json(node),
        Qcow2Node image when BackingOverridden(image) => Json(image),
        FilterNode filter => Of(filter.Child),
        _ when node.File is { } child => FormatName(node, Of(child)),
        _ => node.NodeName,
    };

    // A format node is named by its file child, unless that has no plain name: then by its own options.
    private static string FormatName(BlockNode node, string childName) =>
        childName.StartsWith("json:", StringComparison.Ordinal) ? Json(node) : childName;

    private static string Json(BlockNode node) => "json:" + QmpJsonWriter.ToText(OpenOptions(node));

    // QEMU's bdrv_backing_overridden.
    private static bool BackingOverridden(Qcow2Node image) =>
        image.Backing is { } backing
            ? !string.Equals(image.AutoBackingFile, Of(backing), StringComparison.Ordinal)
            : !string.IsNullOrEmpty(image.AutoBackingFile);

    // The options that would open the node as it is (QEMU's full_open_options: driver, children, file name), members
    // in QDict order.
    private static JsonObject OpenOptions(BlockNode node)
    {
        switch (node)
        {
            case FileNode file:
                return InQDictOrder(new() { ["driver"] = "file", ["filename"] = file.Filename });
            case FilterNode filter when filter is not BlkdebugNode:
                return OpenOptions(filter.Child); // implicit filters (mirror_top, copy-on-read) do not show
            default:
                var options = new Dictionary<string, JsonNode?>(StringComparer.Ordinal) { ["driver"] = node.DriverName };
                if (node.File is { } child)
                {
                    options[node is BlkdebugNode ? "image" : "file"] = OpenOptions(child);
                }

                if (node is Qcow2Node image && BackingOverridden(image))
                {
                    options["backing"] = image.Backing is { } backing ? OpenOptions(backing) : null;
                }

                if (node is BlkdebugNode blkdebug)
                {
                    AddRules(options, blkdebug.OpenedWith);
                }

                return InQDictOrder(options);
        }
    }

    // QEMU keeps blkdebug's rules flattened as given: "inject-error.0.event": "read_aio", "inject-error.0.errno": 5, ...
    private static void AddRules(Dictionary<string, JsonNode?> options, IReadOnlyList<BlkdebugInjectErrorOptions> rules)
    {
        for (int i = 0; i < rules.Count; i++)
        {
            BlkdebugInjectErrorOptions rule = rules[i];
            foreach (string member in rule.Given.Split(','))
            {
                options[$"inject-error.{i}.{member}"] = member switch
                {
                    "event" => BlockdevOptionsParser.EventName(rule.Event),
                    "iotype" => rule.IOType is { } type ? BlockdevOptionsParser.IOTypeName(type) : null,
                    "errno" => rule.Errno,
                    "sector" => rule.Sector,
                    "once" => rule.Once,
                    "immediately" => rule.Immediately,
                    "state" => rule.State,
                    _ => null,
                };
            }
        }
    }

    // QEMU's QDict iterates its 512 hash buckets in order (qdict.c's tdb_hash), which is the member order of its JSON.
    private static JsonObject InQDictOrder(Dictionary<string, JsonNode?> members) =>
        new(members.OrderBy(m => QDictBucket(m.Key)).ThenBy(m => m.Key, StringComparer.Ordinal));

    private static uint QDictBucket(string key)
    {
        uint value = unchecked(0x238F13AFu * (uint)key.Length);
        for (int i = 0; i < key.Length; i++)
        {
            value = unchecked(value + ((uint)key[i] << (i * 5 % 24)));
        }

        return unchecked((1103515243u * value) + 12345u) % 512;
    }
}
