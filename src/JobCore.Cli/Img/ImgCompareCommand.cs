using System.CommandLine;
using JobCore.Block.Tools;

namespace JobCore.Cli.Img;

/// <summary><c>jobctl img compare [-f FMT] [-F FMT] [-q] A B</c>: exit 0 identical, 1 different, 2 error.</summary>
internal static class ImgCompareCommand
{
    /// <summary>Builds the command.</summary>
    public static Command Create()
    {
        var format1 = ImgOptions.Format("format of the first image (probed when omitted)");
        var format2 = new Option<string?>("-F") { Description = "format of the second image (probed when omitted)", HelpName = "FMT" };
        var quiet = new Option<bool>("-q") { Description = "print nothing; only the exit code tells" };
        var first = ImgOptions.File("filename1", "first image");
        var second = ImgOptions.File("filename2", "second image");
        var command = new Command("compare", "compare the guest contents of two images") { format1, format2, quiet, first, second };
        command.SetAction((parse, cancellationToken) => ImgOptions.RunAsync(async token =>
        {
            await using var a = await ImageChain.OpenAsync(parse.GetValue(first)!, parse.GetValue(format1), readOnly: true, withBacking: true, token).ConfigureAwait(false);
            await using var b = await ImageChain.OpenAsync(parse.GetValue(second)!, parse.GetValue(format2), readOnly: true, withBacking: true, token).ConfigureAwait(false);
            var result = await ImageCompare.CompareAsync(a.Top, b.Top, token).ConfigureAwait(false);
            if (!parse.GetValue(quiet))
            {
                await Console.Out.WriteAsync(result.Report).ConfigureAwait(false);
            }

            return result.ExitCode;
        }, cancellationToken, failureExitCode: 2));
        return command;
    }
}
