using System.CommandLine;
using JobCore.Block.Tools;

namespace JobCore.Cli.Img;

/// <summary><c>jobctl img check [-f FMT] [--output human|json] FILE</c>: exit 0 clean, 1 check failed, 2 corruption, 3 leaks only (like qemu-img).</summary>
internal static class ImgCheckCommand
{
    /// <summary>Builds the command.</summary>
    public static Command Create()
    {
        var format = ImgOptions.Format();
        var output = ImgOptions.Output();
        var file = ImgOptions.File();
        var command = new Command("check", "check an image's metadata for errors and leaks") { format, output, file };
        command.SetAction((parse, cancellationToken) => ImgOptions.RunAsync(async token =>
        {
            var filename = parse.GetValue(file)!;
            var summary = await ImageCheck.CheckFileAsync(filename, parse.GetValue(format), token).ConfigureAwait(false);
            foreach (var message in summary.Messages)
            {
                await Console.Error.WriteLineAsync(message).ConfigureAwait(false);
            }

            await Console.Out.WriteAsync(parse.GetValue(output) == "json" ? summary.ToJson(filename) : summary.Report).ConfigureAwait(false);
            return summary.ExitCode;
        }, cancellationToken));
        return command;
    }
}
