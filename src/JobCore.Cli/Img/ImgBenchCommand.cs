using System.CommandLine;
using JobCore.Block.Tools;

namespace JobCore.Cli.Img;

/// <summary>
/// <c>jobctl img bench [-c COUNT] [-d DEPTH] [-f FMT] [-n] [-o OFFSET] [-q] [-s BUFFER_SIZE] [-S STEP] [-t CACHE] [-w]
/// [--pattern=P] FILE</c>: qemu-img bench's request loop and output (only cache mode writeback).
/// </summary>
internal static class ImgBenchCommand
{
    /// <summary>Builds the command.</summary>
    public static Command Create()
    {
        // Numbers are taken as text so that bad values get qemu-img's messages rather than the parser's.
        var count = Text("-c", "number of requests (default 75000)", "COUNT");
        var depth = Text("-d", "requests in flight at once (default 64)", "DEPTH");
        var format = ImgOptions.Format();
        var native = new Option<bool>("-n") { Description = "native AIO (needs O_DIRECT: refused, as jobctl only has cache mode writeback)" };
        var offset = Text("-o", "offset of the first request (default 0)", "OFFSET");
        var quiet = new Option<bool>("-q") { Description = "accepted; like qemu-img, the two report lines are printed anyway" };
        var bufferSize = Text("-s", "bytes per request (default 4096; k, M, G suffixes)", "BUFFER_SIZE");
        var step = Text("-S", "distance between consecutive requests (default: the buffer size)", "STEP");
        var cache = Text("-t", "cache mode: writeback (the default; none, unsafe, directsync and writethrough are refused)", "CACHE");
        var write = new Option<bool>("-w") { Description = "write requests instead of reads" };
        var pattern = Text("--pattern", "the byte written by write requests (default 0)", "PATTERN");
        var file = ImgOptions.File();
        var command = new Command("bench", "run a simple sequential I/O benchmark on an image (qemu-img bench)")
        {
            count, depth, format, native, offset, quiet, bufferSize, step, cache, write, pattern, file,
        };
        command.SetAction((parse, cancellationToken) => ImgOptions.RunAsync(async token =>
        {
            var request = ImageBenchRequest.Parse(parse.GetValue(write), parse.GetValue(count), parse.GetValue(depth), parse.GetValue(offset),
                parse.GetValue(bufferSize), parse.GetValue(step), parse.GetValue(pattern));
            var filename = parse.GetValue(file)!;
            ImageBench.CheckCacheMode(parse.GetValue(cache), parse.GetValue(native), filename);
            await using var chain = await ImageChain.OpenAsync(filename, parse.GetValue(format), readOnly: !request.Write, withBacking: true, token)
                .ConfigureAwait(false);
            await Console.Out.WriteAsync(request.Header).ConfigureAwait(false);
            await Console.Out.FlushAsync(token).ConfigureAwait(false);
            var elapsed = await ImageBench.RunAsync(chain.Top, request, cancellationToken: token).ConfigureAwait(false);
            await Console.Out.WriteAsync(ImageBenchRequest.Footer(elapsed)).ConfigureAwait(false);
            return 0;
        }, cancellationToken));
        return command;
    }

    private static Option<string?> Text(string name, string description, string helpName) =>
        new(name) { Description = description, HelpName = helpName };
}
