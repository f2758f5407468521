using JobCore.Block.Bitmaps;
using JobCore.Block.Graph;
using JobCore.Block.Nodes;
using JobCore.Block.Options;

namespace JobCore.Block.Tests.Graph;

/// <summary>
/// Random sequences of graph operations: each either works or is refused with a <see cref="BlockGraphException"/>;
/// afterwards every registered node is usable and its children are registered; undoing everything empties the graph.
/// </summary>
[TestClass]
public sealed class BlockGraphModelTests
{
    [TestMethod]
    [DataRow(11)]
    [DataRow(12)]
    [DataRow(13)]
    public async Task Random_operations_keep_the_graph_consistent(int seed)
    {
        await using var dir = new GraphTestFolder();
        string path = GraphTestFolder.Json(dir.Raw("a.raw", 65536, 0x3C));
        var random = new Random(seed);
        string[] names = ["a", "b", "c", "d", "e", "f"];
        var leases = new List<BlockJobLease>();
        var backends = new List<BlockBackend>();
        var filters = new List<FilterNode>();
        int refused = 0;

        for (int step = 0; step < 300; step++)
        {
            string name = names[random.Next(names.Length)];
            string other = names[random.Next(names.Length)];
            BlockNode[] nodes = [.. dir.Graph.Nodes];
            BlockNode? any = nodes.Length == 0 ? null : nodes[random.Next(nodes.Length)];
            try
            {
                switch (random.Next(9))
                {
                    case 0:
                        await dir.Graph.AddAsync(BlockdevOptions.Parse(
                            $$$"""{"driver":"file","node-name":"{{{name}}}","filename":{{{path}}}}"""));
                        break;
                    case 1:
                        await dir.Graph.AddAsync(BlockdevOptions.Parse(
                            """{"driver":"raw","node-name":""" + $"\"{name}\"" + ""","file":{"driver":"file","filename":""" + path + "}}"));
                        break;
                    case 2:
                        await dir.Graph.AddAsync(BlockdevOptions.Parse(
                            $$$"""{"driver":"blkdebug","node-name":"{{{name}}}","image":"{{{other}}}"}"""));
                        break;
                    case 3:
                        await dir.Graph.RemoveAsync(any?.NodeName ?? name);
                        break;
                    case 4 when any is not null:
                        leases.Add(dir.Graph.AcquireJobLease("stream", [any]));
                        break;
                    case 5 when leases.Count > 0:
                        int l = random.Next(leases.Count);
                        await leases[l].DisposeAsync();
                        leases.RemoveAt(l);
                        break;
                    case 6 when any is not null:
                        backends.Add(dir.Graph.AttachBackend("dev" + step, any));
                        break;
                    case 7 when backends.Count > 0:
                        int b = random.Next(backends.Count);
                        await dir.Graph.DetachBackendAsync(backends[b]);
                        backends.RemoveAt(b);
                        break;
                    case 8 when any is not null:
                        if (filters.Count > 0 && random.Next(2) == 0)
                        {
                            int f = random.Next(filters.Count);
                            await dir.Graph.RemoveFilterAsync(filters[f]);
                            filters.RemoveAt(f);
                        }
                        else
                        {
                            filters.Add(await dir.Graph.InsertFilterAsync(any, (n, c) => new DirtyTrackingNode(n, c)));
                        }

                        break;
                    default:
                        break;
                }
            }
            catch (BlockGraphException)
            {
                refused++;
            }

            await CheckConsistentAsync(dir.Graph, $"seed {seed} step {step}");
        }

        Assert.IsTrue(refused > 0 && refused < 300, $"{refused} refusals");

        // Undo everything: the graph must end empty.
        foreach (BlockJobLease lease in leases)
        {
            await lease.DisposeAsync();
        }

        foreach (BlockBackend backend in backends)
        {
            await dir.Graph.DetachBackendAsync(backend);
        }

        foreach (FilterNode filter in Enumerable.Reverse(filters))
        {
            await dir.Graph.RemoveFilterAsync(filter);
        }

        for (int round = 0; round < 20 && dir.Graph.Nodes.Count > 0; round++)
        {
            foreach (BlockNode node in dir.Graph.Nodes.Where(dir.Graph.IsMonitorOwned).ToList())
            {
                try
                {
                    await dir.Graph.RemoveAsync(node.NodeName);
                }
                catch (BlockGraphException)
                {
                    // Still someone's child; a later round removes it.
                }
            }
        }

        Assert.AreEqual(0, dir.Graph.Nodes.Count, string.Join(", ", dir.Graph.Nodes));
    }

    private static async Task CheckConsistentAsync(BlockGraph graph, string where)
    {
        var one = new byte[1];
        foreach (BlockNode node in graph.Nodes)
        {
            Assert.AreSame(node, graph.Find(node.NodeName), where);
            foreach (BlockNode? child in new[] { node.File, node.Backing })
            {
                if (child is not null)
                {
                    Assert.AreSame(child, graph.Find(child.NodeName), $"{where}: child {child} of {node} is registered");
                }
            }

            await node.ReadAsync(0, one);
            Assert.AreEqual(0x3C, one[0], $"{where}: {node} reads");
        }
    }
}
