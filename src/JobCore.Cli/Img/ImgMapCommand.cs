using System.CommandLine;
using JobCore.Block.Tools;

namespace JobCore.Cli.Img;

/// <summary><c>jobctl img map [-f FMT] [--output human|json] FILE</c>.</summary>
internal static class ImgMapCommand
{
    /// <summary>Builds the command.</summary>
    public static Command Create()
    {
        var format = ImgOptions.Format();
        var output = ImgOptions.Output();
        var file = ImgOptions.File();
        var command = new Command("map", "show the allocation of an image and its backing chain") { format, output, file };
        command.SetAction((parse, cancellationToken) => ImgOptions.RunAsync(async token =>
        {
            await using var chain = await ImageChain.OpenAsync(parse.GetValue(file)!, parse.GetValue(format),
                readOnly: true, withBacking: true, token).ConfigureAwait(false);
            var map = await ImageMap.BuildAsync(chain.Top, ImageChain.FilenameOf, token).ConfigureAwait(false);
            await Console.Out.WriteAsync(parse.GetValue(output) == "json" ? ImageMap.ToJson(map) : ImageMap.ToHuman(map)).ConfigureAwait(false);
            return 0;
        }, cancellationToken));
        return command;
    }
}
