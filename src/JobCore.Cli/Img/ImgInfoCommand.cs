using System.CommandLine;
using JobCore.Block.Tools;

namespace JobCore.Cli.Img;

/// <summary><c>jobctl img info [-f FMT] [--output human|json] FILE</c>.</summary>
internal static class ImgInfoCommand
{
    /// <summary>Builds the command.</summary>
    public static Command Create()
    {
        var format = ImgOptions.Format();
        var output = ImgOptions.Output();
        var file = ImgOptions.File();
        var command = new Command("info", "show an image's format, sizes and backing file") { format, output, file };
        command.SetAction((parse, cancellationToken) => ImgOptions.RunAsync(async token =>
        {
            var info = await ImageInfo.ReadAsync(parse.GetValue(file)!, parse.GetValue(format), token).ConfigureAwait(false);
            await Console.Out.WriteAsync(parse.GetValue(output) == "json" ? info.ToJson() : info.ToHuman()).ConfigureAwait(false);
            return 0;
        }, cancellationToken));
        return command;
    }
}
