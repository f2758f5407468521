using System.CommandLine;
using JobCore.Block.Tools;

namespace JobCore.Cli.Img;

/// <summary><c>jobctl img create -f qcow2|raw [-b BACKING -F FMT] [-o cluster_size=N] FILE [SIZE]</c>.</summary>
internal static class ImgCreateCommand
{
    /// <summary>Builds the command.</summary>
    public static Command Create()
    {
        var format = new Option<string>("-f", "--format") { Description = "image format: qcow2 or raw", HelpName = "FMT", DefaultValueFactory = _ => "raw" };
        var backing = new Option<string?>("-b") { Description = "backing file (relative names are relative to FILE's folder)", HelpName = "BACKING" };
        var backingFormat = new Option<string?>("-F") { Description = "backing file format (required with -b)", HelpName = "FMT" };
        var options = ImgOptions.FormatOptions();
        var quiet = new Option<bool>("-q") { Description = "do not print the Formatting line" };
        var file = ImgOptions.File();
        var size = new Argument<string?>("size")
        {
            Description = "virtual size: bytes or with a K/M/G/T/P/E suffix (defaults to the backing file's size)",
            Arity = ArgumentArity.ZeroOrOne,
        };
        var command = new Command("create", "create a new image") { format, backing, backingFormat, options, quiet, file, size };
        command.SetAction((parse, cancellationToken) => ImgOptions.RunAsync(async token =>
        {
            var o = ImageOptionString.Parse(parse.GetValue(options));
            var sizeText = parse.GetValue(size);
            var request = new ImageCreateRequest(
                parse.GetValue(file)!,
                parse.GetValue(format)!,
                sizeText is null ? null : ImageSize.Parse(sizeText),
                parse.GetValue(backing) ?? o.BackingFile,
                parse.GetValue(backingFormat) ?? o.BackingFormat,
                o.ClusterSize);
            var line = await ImageCreate.CreateAsync(request, token).ConfigureAwait(false);
            if (!parse.GetValue(quiet))
            {
                await Console.Out.WriteAsync(line + "\n").ConfigureAwait(false);
            }

            return 0;
        }, cancellationToken));
        return command;
    }
}
