using System.CommandLine;
using JobCore.Block.Tools;

namespace JobCore.Cli.Img;

/// <summary><c>jobctl img check [-f FMT] FILE</c>: exit 0 clean, 1 check failed, 2 corruption, 3 leaks only (like qemu-img).</summary>
internal static class ImgCheckCommand
{
    /// <summary>Builds the command.</summary>
    public static Command Create()
    {
        var format = ImgOptions.Format();
        var file = ImgOptions.File();
        var command = new Command("check", "check an image's metadata for errors and leaks") { format, file };
        command.SetAction((parse, cancellationToken) => ImgOptions.RunAsync(async token =>
        {
            var summary = await ImageCheck.CheckFileAsync(parse.GetValue(file)!, parse.GetValue(format), token).ConfigureAwait(false);
            foreach (var message in summary.Messages)
            {
                await Console.Error.WriteLineAsync(message).ConfigureAwait(false);
            }

            await Console.Out.WriteAsync(summary.Report).ConfigureAwait(false);
            return summary.ExitCode;
        }, cancellationToken));
        return command;
    }
}
