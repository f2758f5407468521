using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace JobCore.Block.Tools;

/// <summary>
/// The counts <c>qemu-img check</c> reports about an image, and its summary text and exit code.
/// </summary>
/// <param name="Corruptions">Errors: clusters referenced but not (or wrongly) refcounted, invalid entries.</param>
/// <param name="Leaks">Clusters refcounted but not referenced.</param>
/// <param name="CheckErrors">Internal errors (e.g. I/O) that kept the check from completing.</param>
/// <param name="TotalClusters">Guest clusters of the virtual disk.</param>
/// <param name="AllocatedClusters">Guest clusters allocated in this image.</param>
/// <param name="FragmentedClusters">Allocated clusters not following their predecessor on the host.</param>
/// <param name="CompressedClusters">Allocated clusters stored compressed.</param>
/// <param name="ImageEndOffset">The end of the last used host cluster.</param>
/// <param name="Messages">Detail lines (<c>Leaked cluster …</c>, <c>ERROR …</c>) qemu-img prints on stderr.</param>
internal sealed record CheckSummary(
    long Corruptions,
    long Leaks,
    long CheckErrors,
    long TotalClusters,
    long AllocatedClusters,
    long FragmentedClusters,
    long CompressedClusters,
    long ImageEndOffset,
    IReadOnlyList<string> Messages)
{
    /// <summary>qemu-img's exit code: 0 clean, 1 check not completed, 2 corruption, 3 leaks only.</summary>
    public int ExitCode => CheckErrors > 0 ? 1 : Corruptions > 0 ? 2 : Leaks > 0 ? 3 : 0;

    /// <summary>qemu-img's stdout summary (each line ends with a newline).</summary>
    public string Report
    {
        get
        {
            var c = CultureInfo.InvariantCulture;
            var sb = new StringBuilder();
            if (Corruptions == 0 && Leaks == 0 && CheckErrors == 0)
            {
                sb.Append("No errors were found on the image.\n");
            }
            else
            {
                if (Corruptions > 0)
                {
                    sb.Append(c, $"\n{Corruptions} errors were found on the image.\n")
                        .Append("Data may be corrupted, or further writes to the image may corrupt it.\n");
                }

                if (Leaks > 0)
                {
                    sb.Append(c, $"\n{Leaks} leaked clusters were found on the image.\n")
                        .Append("This means waste of disk space, but no harm to data.\n");
                }

                if (CheckErrors > 0)
                {
                    sb.Append(c, $"\n{CheckErrors} internal errors have occurred during the check.\n");
                }
            }

            if (TotalClusters != 0 && AllocatedClusters != 0)
            {
                sb.Append(c, $"{AllocatedClusters}/{TotalClusters} = {Percent(AllocatedClusters, TotalClusters)}% allocated, ")
                    .Append(c, $"{Percent(FragmentedClusters, AllocatedClusters)}% fragmented, ")
                    .Append(c, $"{Percent(CompressedClusters, AllocatedClusters)}% compressed clusters\n");
            }

            if (ImageEndOffset > 0)
            {
                sb.Append(c, $"Image end offset: {ImageEndOffset}\n");
            }

            return sb.ToString();
        }
    }

    /// <summary>qemu-img's <c>--output json</c> text for <paramref name="filename"/> (keys in qemu-img 7.2's order; counts that are zero are left out as qemu-img does).</summary>
    public string ToJson(string filename)
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions
        {
            Indented = true,
            IndentSize = 4,
            Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        }))
        {
            w.WriteStartObject();
            WriteIfPositive(w, "image-end-offset", ImageEndOffset);
            WriteIfPositive(w, "compressed-clusters", CompressedClusters);
            w.WriteNumber("total-clusters", TotalClusters);
            WriteIfPositive(w, "corruptions", Corruptions);
            w.WriteNumber("check-errors", CheckErrors);
            WriteIfPositive(w, "leaks", Leaks);
            WriteIfPositive(w, "allocated-clusters", AllocatedClusters);
            w.WriteString("filename", filename);
            w.WriteString("format", "qcow2");
            WriteIfPositive(w, "fragmented-clusters", FragmentedClusters);
            w.WriteEndObject();
        }

        return Encoding.UTF8.GetString(stream.ToArray()) + "\n";
    }

    private static void WriteIfPositive(Utf8JsonWriter writer, string name, long value)
    {
        if (value > 0)
        {
            writer.WriteNumber(name, value);
        }
    }

    /// <summary>C's <c>%0.2f</c>: exact ties round to even (1.5625 → 1.56), which .NET's "F2" alone does not do.</summary>
    private static string Percent(long part, long whole) =>
        Math.Round(part * 100.0 / whole, 2, MidpointRounding.ToEven).ToString("F2", CultureInfo.InvariantCulture);
}
