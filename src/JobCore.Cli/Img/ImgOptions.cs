using System.CommandLine;
using JobCore.Block.Graph;
using JobCore.Block.Nodes;
using JobCore.Block.Tools;

namespace JobCore.Cli.Img;

/// <summary>Options shared by the <c>img</c> subcommands, and the one place that turns failures into qemu-img-like errors.</summary>
internal static class ImgOptions
{
    /// <summary><c>-f FMT</c>: the image format (probed when omitted).</summary>
    public static Option<string?> Format(string description = "image format: qcow2 or raw (probed when omitted)") =>
        new("-f", "--format") { Description = description, HelpName = "FMT" };

    /// <summary><c>--output human|json</c>.</summary>
    public static Option<string> Output() => new Option<string>("--output")
    {
        Description = "output format",
        DefaultValueFactory = _ => "human",
    }.AcceptOnlyFromAmong("human", "json");

    /// <summary><c>-o key=value[,...]</c> format options.</summary>
    public static Option<string[]> FormatOptions(string description = "format options: cluster_size=N, backing_file=FILE, backing_fmt=FMT") => new("-o")
    {
        Description = description,
        HelpName = "OPTIONS",
        AllowMultipleArgumentsPerToken = false,
    };

    /// <summary>An image file argument.</summary>
    public static Argument<string> File(string name = "filename", string description = "image file") =>
        new(name) { Description = description };

    /// <summary>
    /// Runs a subcommand body: expected failures (missing file, bad image, bad option, I/O error) print one line
    /// <c>jobctl: &lt;what&gt;</c> on stderr and give <paramref name="failureExitCode"/>; nothing prints a stack trace.
    /// </summary>
    public static async Task<int> RunAsync(Func<CancellationToken, Task<int>> body, CancellationToken cancellationToken, int failureExitCode = 1)
    {
        try
        {
            return await body(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            await Console.Error.WriteLineAsync("jobctl: interrupted").ConfigureAwait(false);
            return failureExitCode;
        }
#pragma warning disable CA1031 // a command-line tool reports every failure as one line instead of crashing
        catch (Exception e)
#pragma warning restore CA1031
        {
            var message = e switch
            {
                ImageToolException or BlockIOException or BlockFormatException or BlockGraphException => e.Message,
                UnauthorizedAccessException or IOException => e.Message,
                _ => $"{e.GetType().Name}: {e.Message}",
            };
            await Console.Error.WriteLineAsync("jobctl: " + message.ReplaceLineEndings(" ")).ConfigureAwait(false);
            return e is ImageToolException { ExitCode: { } code } ? code : failureExitCode;
        }
    }
}
