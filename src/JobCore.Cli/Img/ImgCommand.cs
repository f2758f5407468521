using System.CommandLine;

namespace JobCore.Cli.Img;

/// <summary><c>jobctl img</c>: qemu-img-like image tools that work on files directly, without a daemon.</summary>
internal static class ImgCommand
{
    /// <summary>Builds the <c>img</c> command with its subcommands.</summary>
    public static Command Create() => new("img", "qemu-img-like image tools (raw and qcow2), working without a daemon")
    {
        ImgCreateCommand.Create(),
        ImgInfoCommand.Create(),
        ImgCheckCommand.Create(),
        ImgMapCommand.Create(),
        ImgCompareCommand.Create(),
        ImgConvertCommand.Create(),
        ImgBenchCommand.Create(),
    };
}
