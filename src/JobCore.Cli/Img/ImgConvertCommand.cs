using System.CommandLine;
using JobCore.Block.Tools;

namespace JobCore.Cli.Img;

/// <summary><c>jobctl img convert [-f FMT] -O qcow2|raw [-o cluster_size=N] SRC DST</c>.</summary>
internal static class ImgConvertCommand
{
    /// <summary>Builds the command.</summary>
    public static Command Create()
    {
        var format = ImgOptions.Format("source format (probed when omitted)");
        var outputFormat = new Option<string>("-O") { Description = "output format: qcow2 or raw", HelpName = "FMT", DefaultValueFactory = _ => "raw" };
        var options = ImgOptions.FormatOptions("output format options: cluster_size=N (qcow2)");
        var compress = new Option<bool>("-c") { Description = "compress the output (not supported: refused)" };
        var source = ImgOptions.File("source", "source image (its backing chain is read too)");
        var destination = ImgOptions.File("destination", "output image, created or overwritten");
        var command = new Command("convert", "copy an image's guest contents into a new image, skipping zeroes")
        {
            format, outputFormat, options, compress, source, destination,
        };
        command.SetAction((parse, cancellationToken) => ImgOptions.RunAsync(async token =>
        {
            if (parse.GetValue(compress))
            {
                throw new ImageToolException("Compressed output (-c) is not supported by jobctl img convert");
            }

            await ImageConvert.ConvertFileAsync(parse.GetValue(source)!, parse.GetValue(format), parse.GetValue(destination)!,
                parse.GetValue(outputFormat)!, ImageOptionString.Parse(parse.GetValue(options)), token).ConfigureAwait(false);
            return 0;
        }, cancellationToken));
        return command;
    }
}
