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

        await RemoveEverythingAsync(dir.Graph);
    }

    [TestMethod]
    [DataRow(21)]
    [DataRow(22)]
    public async Task Random_chain_operations_keep_the_graph_consistent(int seed)
    {
        await using var dir = new GraphTestFolder();
        await Qcow2Node.CreateAsync(dir.File("q0.qcow2"), new Qcow2CreateOptions { Size = 65536, ClusterSize = 4096 });
        await Qcow2Node.CreateAsync(dir.File("q1.qcow2"), new Qcow2CreateOptions { Size = 65536, BackingFile = "q0.qcow2", BackingFormat = "qcow2" });
        await Qcow2Node.CreateAsync(dir.File("q2.qcow2"), new Qcow2CreateOptions { Size = 65536, BackingFile = "q1.qcow2", BackingFormat = "qcow2" });
        var random = new Random(seed);
        string[] names = ["a", "b", "c", "d"];
        var leases = new List<BlockJobLease>();
        int done = 0;
        for (int step = 0; step < 200; step++)
        {
            BlockNode[] nodes = [.. dir.Graph.Nodes];
            BlockNode? any = nodes.Length == 0 ? null : nodes[random.Next(nodes.Length)];
            BlockNode? another = nodes.Length == 0 ? null : nodes[random.Next(nodes.Length)];
            string name = names[random.Next(names.Length)];
            try
            {
                switch (random.Next(7))
                {
                    case 0:
                    case 1:
                        string image = GraphTestFolder.Json(dir.File($"q{random.Next(3)}.qcow2"));
                        string backing = random.Next(3) switch { 0 => ""","backing":null""", 1 => $",\"backing\":\"{names[random.Next(names.Length)]}\"", _ => "" };
                        await dir.Graph.AddAsync(BlockdevOptions.Parse(
                            """{"driver":"qcow2","read-only":true,"node-name":""" + $"\"{name}\"" + ""","file":{"driver":"file","filename":""" + image + "}" + backing + "}"));
                        break;
                    case 2:
                        await dir.Graph.RemoveAsync(any?.NodeName ?? name);
                        break;
                    case 3 when any is Qcow2Node q && another is not null:
                        await dir.Graph.ChangeBackingAsync(q, random.Next(4) == 0 ? null : another, writeHeader: false);
                        break;
                    case 4 when any is not null && another is not null:
                        await dir.Graph.ReplaceNodeAsync(any, another);
                        break;
                    case 5 when any is not null:
                        await dir.Graph.ReopenAsync(any, readOnly: random.Next(2) == 0);
                        break;
                    case 6 when any is not null:
                        if (leases.Count > 0 && random.Next(2) == 0)
                        {
                            await leases[0].DisposeAsync();
                            leases.RemoveAt(0);
                        }
                        else
                        {
                            leases.Add(dir.Graph.AcquireJobLease("commit", [any]));
                        }

                        break;
                    default:
                        continue;
                }

                done++;
            }
            catch (BlockGraphException)
            {
                // Refused: the graph must be unchanged, which the check below verifies structurally.
            }

            string where = $"seed {seed} step {step}";
            foreach (BlockNode node in dir.Graph.Nodes)
            {
                Assert.AreSame(node, dir.Graph.Find(node.NodeName), where);
                _ = BackingChain.Layers(node).Count(); // no loop
                foreach (BlockNode? child in new[] { node.File, node.Backing })
                {
                    if (child is not null)
                    {
                        Assert.AreSame(child, dir.Graph.Find(child.NodeName), $"{where}: child {child} of {node} is registered");
                    }
                }

                await node.ReadAsync(0, new byte[512]);
            }
        }

        Assert.IsTrue(done > 20, $"{done} operations went through");
        foreach (BlockJobLease lease in leases)
        {
            await lease.DisposeAsync();
        }

        await RemoveEverythingAsync(dir.Graph);
    }

    // Deletes monitor-owned nodes until none is left; a node still used as a child goes in a later round.
    private static async Task RemoveEverythingAsync(BlockGraph graph)
    {
        for (int round = 0; round < 20 && graph.Nodes.Count > 0; round++)
        {
            foreach (BlockNode node in graph.Nodes.Where(graph.IsMonitorOwned).ToList())
            {
                try
                {
                    await graph.RemoveAsync(node.NodeName);
                }
                catch (BlockGraphException)
                {
                    // Still someone's child.
                }
            }
        }

        Assert.AreEqual(0, graph.Nodes.Count, string.Join(", ", graph.Nodes));
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
