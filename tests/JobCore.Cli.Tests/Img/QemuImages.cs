using JobCore.Cli.Tests.Support;

namespace JobCore.Cli.Tests.Img;

/// <summary>Images made by qemu-img and qemu-io, used as inputs for jobctl.</summary>
internal static class QemuImages
{
    /// <summary>
    /// base.qcow2 (64M: 1M of 0xab at 0, 1M of zero clusters at 2M, 64K at 40M) and top.qcow2 over it (1M of 0xcd at
    /// 512K, a discard-free zero write at 8M), both in <paramref name="dir"/>.
    /// </summary>
    public static async Task MakeChainAsync(TempDirectory dir, int clusterSize = 65536)
    {
        await Tool.QemuImgOkAsync(dir.Path, "create", "-q", "-f", "qcow2", "-o", $"cluster_size={clusterSize}", "base.qcow2", "64M");
        await Tool.QemuIoOkAsync(dir.Path, "base.qcow2", "qcow2", "write -P 0xab 0 1M", "write -z 2M 1M", "write -P 0x11 40M 64k");
        await Tool.QemuImgOkAsync(dir.Path, "create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", "top.qcow2");
        await Tool.QemuIoOkAsync(dir.Path, "top.qcow2", "qcow2", "write -P 0xcd 512k 1M", "write -z 8M 128k");
    }

    /// <summary>A raw file with data at the start and at 1M, holes elsewhere.</summary>
    public static async Task MakeRawAsync(TempDirectory dir, string name = "r.img", string size = "4M")
    {
        await Tool.QemuImgOkAsync(dir.Path, "create", "-q", "-f", "raw", name, size);
        await Tool.QemuIoOkAsync(dir.Path, name, "raw", "write -P 0x5a 0 64k", "write -P 0x77 1M 192k");
    }
}
