using System.CommandLine;
using JobCore.Block.Tools;

namespace JobCore.Cli.Img;

/// <summary><c>jobctl img info [-f FMT] [--output human|json] [--backing-chain] FILE</c>.</summary>
internal static class ImgInfoCommand
{
    /// <summary>Builds the command.</summary>
    public static Command Create()
    {
        var format = ImgOptions.Format();
        var output = ImgOptions.Output();
        var backingChain = new Option<bool>("--backing-chain") { Description = "show every image of the backing chain" };
        var file = ImgOptions.File();
        var command = new Command("info", "show an image's format, sizes and backing file") { format, output, backingChain, file };
        command.SetAction((parse, cancellationToken) => ImgOptions.RunAsync(async token =>
        {
            var json = parse.GetValue(output) == "json";
            string text;
            if (parse.GetValue(backingChain))
            {
                var chain = await ImageInfo.ReadChainAsync(parse.GetValue(file)!, parse.GetValue(format), token).ConfigureAwait(false);
                text = json ? ImageInfo.ToJson(chain) : ImageInfo.ToHuman(chain);
            }
            else
            {
                var info = await ImageInfo.ReadAsync(parse.GetValue(file)!, parse.GetValue(format), token).ConfigureAwait(false);
                text = json ? info.ToJson() : info.ToHuman();
            }

            await Console.Out.WriteAsync(text).ConfigureAwait(false);
            return 0;
        }, cancellationToken));
        return command;
    }
}
