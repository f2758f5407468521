using JobCore.Block.Tests.Interop;

namespace JobCore.Block.Tests.Conformance;

/// <summary>
/// The images the differential scripts run on, made by qemu-img/qemu-io in a peer's directory before it starts, and the
/// blockdev-add steps that open them bottom-up (the same steps on both peers, so their answers are compared too).
/// </summary>
internal static class ConformanceImages
{
    public const string Size = "4M";

    /// <summary>base ← mid ← top (qcow2, 64 KiB clusters) with 1 MiB of its own pattern each; dst: an empty qcow2 of the same size; small.qcow2: 2 MiB.</summary>
    public static async Task ChainAsync(string dir)
    {
        string F(string name) => Path.Combine(dir, name);
        await QemuImg.ImgOkAsync("create", "-q", "-f", "qcow2", F("base.qcow2"), Size);
        await QemuImg.IoCommandsAsync(F("base.qcow2"), "qcow2", "write -P 0x11 0 1M");
        await QemuImg.ImgOkAsync("create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", F("mid.qcow2"), Size);
        await QemuImg.IoCommandsAsync(F("mid.qcow2"), "qcow2", "write -P 0x22 1M 1M");
        await QemuImg.ImgOkAsync("create", "-q", "-f", "qcow2", "-b", "mid.qcow2", "-F", "qcow2", F("top.qcow2"), Size);
        await QemuImg.IoCommandsAsync(F("top.qcow2"), "qcow2", "write -P 0x33 2M 1M");
        await QemuImg.ImgOkAsync("create", "-q", "-f", "qcow2", F("dst.qcow2"), Size);
        await QemuImg.ImgOkAsync("create", "-q", "-f", "qcow2", F("small.qcow2"), "2M");
        await QemuImg.ImgOkAsync("create", "-q", "-f", "raw", F("raw.img"), Size);
    }

    public static string Add(string json) => $$"""{"execute":"blockdev-add","arguments":{{json}}}""";

    public static string File(string name) => $$"""{"driver":"file","filename":"$DIR/{{name}}"}""";

    /// <summary>Opens base, mid, top (and dst unless told otherwise) bottom-up.</summary>
    public static string[] OpenChain(bool target = true)
    {
        List<string> steps =
        [
            Add($$"""{"driver":"qcow2","node-name":"base","file":{{File("base.qcow2")}},"backing":null}"""),
            Add($$"""{"driver":"qcow2","node-name":"mid","file":{{File("mid.qcow2")}},"backing":"base"}"""),
            Add($$"""{"driver":"qcow2","node-name":"top","file":{{File("top.qcow2")}},"backing":"mid"}"""),
        ];
        if (target)
        {
            steps.Add(Add($$"""{"driver":"qcow2","node-name":"dst","file":{{File("dst.qcow2")}}}"""));
        }

        return [.. steps];
    }

    /// <summary>Opens top over a blkdebug node that fails I/O as <paramref name="rule"/> says (base and mid plain).</summary>
    public static string[] OpenChainWithFaultyFile(string layer, string rule)
    {
        string Image(string name) => name == layer
            ? $$"""{"driver":"blkdebug","inject-error":[{{rule}}],"image":{{File(name + ".qcow2")}}}"""
            : File(name + ".qcow2");
        return
        [
            Add($$"""{"driver":"qcow2","node-name":"base","file":{{Image("base")}},"backing":null}"""),
            Add($$"""{"driver":"qcow2","node-name":"mid","file":{{Image("mid")}},"backing":"base"}"""),
            Add($$"""{"driver":"qcow2","node-name":"top","file":{{Image("top")}},"backing":"mid"}"""),
            Add($$"""{"driver":"qcow2","node-name":"dst","file":{{Image("dst")}}}"""),
        ];
    }
}
