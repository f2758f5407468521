using JobCore.Block.Graph;
using JobCore.Block.Nodes;
using JobCore.Block.Options;

namespace JobCore.Block.Tests.Options;

[TestClass]
public sealed class BlockdevOptionsTests
{
    [TestMethod]
    public void Parses_nested_qcow2_over_file()
    {
        var options = (Qcow2BlockdevOptions)BlockdevOptions.Parse(
            """{"driver":"qcow2","node-name":"n","read-only":true,"file":{"driver":"file","filename":"/p"}}""");
        Assert.AreEqual("n", options.NodeName);
        Assert.IsTrue(options.ReadOnly);
        Assert.AreEqual(BackingMode.FromHeader, options.BackingMode);
        var file = (FileBlockdevOptions)options.File.Definition!;
        Assert.AreEqual("/p", file.Filename);
        Assert.IsTrue(file.ReadOnly, "inline children inherit read-only");
        Assert.IsNull(file.NodeName);
    }

    [TestMethod]
    public void Parses_child_references_and_backing_forms()
    {
        var byName = (Qcow2BlockdevOptions)BlockdevOptions.Parse(
            """{"driver":"qcow2","node-name":"top","file":"top-file","backing":"base"}""");
        Assert.AreEqual("top-file", byName.File.Reference);
        Assert.AreEqual(BackingMode.Given, byName.BackingMode);
        Assert.AreEqual("base", byName.Backing!.Reference);

        var none = (Qcow2BlockdevOptions)BlockdevOptions.Parse(
            """{"driver":"qcow2","node-name":"top","file":"f","backing":null}""");
        Assert.AreEqual(BackingMode.None, none.BackingMode);
        Assert.IsNull(none.Backing);

        var inline = (Qcow2BlockdevOptions)BlockdevOptions.Parse(
            """{"driver":"qcow2","node-name":"top","file":"f","backing":{"driver":"raw","file":"g"}}""");
        Assert.IsTrue(inline.Backing!.Definition!.ReadOnly, "backing nodes open read-only by default");
        Assert.IsFalse(inline.ReadOnly);
    }

    [TestMethod]
    public void Parses_blkdebug_rules_with_defaults()
    {
        var options = (BlkdebugBlockdevOptions)BlockdevOptions.Parse("""
            {"driver":"blkdebug","node-name":"d","image":"img","inject-error":[
              {"event":"read_aio"},
              {"event":"write_aio","iotype":"write-zeroes","errno":28,"sector":7,"once":true,"immediately":true,"state":1}]}
            """);
        Assert.AreEqual("img", options.Image.Reference);
        Assert.AreEqual(2, options.InjectError.Count);
        var first = options.InjectError[0];
        Assert.AreEqual(new BlkdebugInjectErrorOptions(BlkdebugEvent.ReadAio), first);
        Assert.AreEqual(5, first.Errno);
        Assert.AreEqual(-1L, first.Sector);
        Assert.IsNull(first.IOType);
        var second = options.InjectError[1];
        Assert.AreEqual(BlkdebugEvent.WriteAio, second.Event);
        Assert.AreEqual(BlkdebugIOType.WriteZeroes, second.IOType);
        Assert.AreEqual(28, second.Errno);
        Assert.AreEqual(7L, second.Sector);
        Assert.IsTrue(second.Once);
        Assert.IsTrue(second.Immediately);
        Assert.AreEqual(1, second.State);
    }

    [TestMethod]
    public void Accepts_common_options_qemu_accepts()
    {
        var options = BlockdevOptions.Parse("""
            {"driver":"file","node-name":"f","filename":"/p","cache":{"direct":false,"no-flush":false},
             "discard":"unmap","auto-read-only":true,"force-share":false,"detect-zeroes":"off","locking":"off","aio":"threads"}
            """);
        Assert.AreEqual("file", options.Driver);
    }

    // Every expected text below was produced by qemu-system-x86_64 7.2 for the same blockdev-add arguments.
    [TestMethod]
    [DataRow("""{}""", "Parameter 'driver' is missing")]
    [DataRow("""{"driver":"foo"}""", "Parameter 'driver' does not accept value 'foo'")]
    [DataRow("""{"driver":5}""", "Invalid parameter type for 'driver', expected: string")]
    [DataRow("""{"driver":"file"}""", "Parameter 'filename' is missing")]
    [DataRow("""{"driver":"file","filename":5}""", "Invalid parameter type for 'filename', expected: string")]
    [DataRow("""{"driver":"file","filename":"/p","bogus":1}""", "Parameter 'bogus' is unexpected")]
    [DataRow("""{"driver":"file","filename":"/p","read-only":"yes"}""", "Invalid parameter type for 'read-only', expected: boolean")]
    [DataRow("""{"driver":"raw","node-name":"d","file":{"driver":"file","filename":"/p"},"read-only":null}""", "Invalid parameter type for 'read-only', expected: boolean")]
    [DataRow("""{"driver":"file","filename":"/p","node-name":7}""", "Invalid parameter type for 'node-name', expected: string")]
    [DataRow("""{"driver":"raw","file":5}""", "Invalid parameter type for 'file', expected: BlockdevRef")]
    [DataRow("""{"driver":"raw"}""", "Parameter 'file' is missing")]
    [DataRow("""{"driver":"raw","file":{"driver":"file"}}""", "Parameter 'file.filename' is missing")]
    [DataRow("""{"driver":"raw","file":{}}""", "Parameter 'file.driver' is missing")]
    [DataRow("""{"driver":"qcow2","node-name":"q","file":{"driver":"file","filename":"/p","bad":1}}""", "Parameter 'file.bad' is unexpected")]
    [DataRow("""{"driver":"qcow2","node-name":"q","file":"f","backing":5}""", "Invalid parameter type for 'backing', expected: BlockdevRefOrNull")]
    [DataRow("""{"driver":"blkdebug","node-name":"d"}""", "Parameter 'image' is missing")]
    [DataRow("""{"driver":"blkdebug","node-name":"d","image":"i","inject-error":[{"event":"foo"}]}""", "Parameter 'event' does not accept value 'foo'")]
    [DataRow("""{"driver":"blkdebug","node-name":"d","image":"i","inject-error":[{}]}""", "Parameter 'inject-error[0].event' is missing")]
    [DataRow("""{"driver":"blkdebug","node-name":"d","image":"i","inject-error":[{"event":"read_aio","iotype":"x"}]}""", "Parameter 'iotype' does not accept value 'x'")]
    [DataRow("""{"driver":"blkdebug","node-name":"d","image":"i","inject-error":[{"event":"read_aio","errno":"5"}]}""", "Invalid parameter type for 'inject-error[0].errno', expected: integer")]
    [DataRow("""{"driver":"blkdebug","node-name":"d","image":"i","inject-error":[{"event":"read_aio","once":1}]}""", "Invalid parameter type for 'inject-error[0].once', expected: boolean")]
    [DataRow("""{"driver":"blkdebug","node-name":"d","image":"i","inject-error":[{"event":"read_aio","x":1}]}""", "Parameter 'inject-error[0].x' is unexpected")]
    [DataRow("""{"driver":"blkdebug","node-name":"d","image":"i","inject-error":{"event":"read_aio"}}""", "Invalid parameter type for 'inject-error', expected: array")]
    [DataRow("""{"driver":"blkdebug","node-name":"d","image":"i","inject-error":[{"event":"read_aio","sector":1.5}]}""", "Invalid parameter type for 'inject-error[0].sector', expected: integer")]
    [DataRow("""{"driver":"raw","file":{"driver":"blkdebug","image":"i","inject-error":[{"event":"write_aio","x":1}]}}""", "Parameter 'file.inject-error[0].x' is unexpected")]
    [DataRow("""{"driver":"file","filename":"/p","detect-zeroes":"unmap"}""", "setting detect-zeroes to unmap is not allowed without setting discard operation to unmap")]
    [DataRow("""{"driver":"file","filename":"/p","detect-zeroes":"maybe"}""", "Parameter 'detect-zeroes' does not accept value 'maybe'")]
    public void Refuses_with_qemu_texts(string json, string expected)
    {
        var error = Assert.ThrowsExactly<BlockGraphException>(() => BlockdevOptions.Parse(json));
        Assert.AreEqual(expected, error.Message);
        Assert.AreEqual(BlockGraphException.GenericError, error.ErrorClass);
    }

    [TestMethod]
    [DataRow("""{"driver":"vmdk","file":"f"}""", "Block driver 'vmdk' is not supported by JobCore (supported: blkdebug, file, qcow2, raw)")]
    [DataRow("""{"driver":"blkdebug","node-name":"d","image":"i","config":"/c"}""", "blkdebug option 'config' is not supported by JobCore (use 'inject-error')")]
    [DataRow("""{"driver":"blkdebug","node-name":"d","image":"i","align":4096}""", "blkdebug option 'align' is not supported by JobCore (use 'inject-error')")]
    [DataRow("""{"driver":"blkdebug","node-name":"d","image":"i","inject-error":[{"event":"l2_load"}]}""", "blkdebug event 'l2_load' is not supported by JobCore (supported: read_aio, write_aio, flush_to_disk)")]
    [DataRow("""{"driver":"blkdebug","node-name":"d","image":"i","inject-error":[{"event":"read_aio","errno":-5}]}""", "Parameter 'inject-error[0].errno' expects a non-negative errno")]
    public void Refuses_what_jobcore_does_not_implement_clearly(string json, string expected)
    {
        var error = Assert.ThrowsExactly<BlockGraphException>(() => BlockdevOptions.Parse(json));
        Assert.AreEqual(expected, error.Message);
    }

    [TestMethod]
    [DataRow("""{"driver":"file","filename":"/p"}""", DetectZeroes.Off)]
    [DataRow("""{"driver":"file","filename":"/p","detect-zeroes":"on"}""", DetectZeroes.On)]
    [DataRow("""{"driver":"qcow2","file":"f","discard":"unmap","detect-zeroes":"unmap"}""", DetectZeroes.Unmap)]
    public void Reads_detect_zeroes(string json, DetectZeroes expected)
    {
        Assert.AreEqual(expected, BlockdevOptions.Parse(json).DetectZeroes);
    }

    [TestMethod]
    public void Refuses_a_non_object_root()
    {
        var error = Assert.ThrowsExactly<BlockGraphException>(() => BlockdevOptions.Parse("[]"));
        Assert.AreEqual("Invalid parameter type for '<anonymous>', expected: object", error.Message);
    }
}
