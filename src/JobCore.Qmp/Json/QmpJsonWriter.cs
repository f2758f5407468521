using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace JobCore.Qmp.Json;

/// <summary>
/// Writes JSON the way QEMU's monitor does: <c>", "</c> and <c>": "</c> separators, pure ASCII output with
/// everything else escaped as <c>\uXXXX</c> (upper-case hex), one message per line. Scripts that grep QEMU's
/// output therefore work unchanged against jobcored.
/// </summary>
public static class QmpJsonWriter
{
    /// <summary>Serializes <paramref name="node"/> followed by CR LF (QEMU's line end), as UTF-8 (all ASCII).</summary>
    public static byte[] ToLine(JsonNode? node)
    {
        var sb = new StringBuilder(128);
        Write(sb, node);
        sb.Append("\r\n");
        return Encoding.ASCII.GetBytes(sb.ToString());
    }

    /// <summary>Serializes <paramref name="node"/> without a trailing newline.</summary>
    public static string ToText(JsonNode? node)
    {
        var sb = new StringBuilder(128);
        Write(sb, node);
        return sb.ToString();
    }

    private static void Write(StringBuilder sb, JsonNode? node)
    {
        switch (node)
        {
            case null:
                sb.Append("null");
                break;
            case JsonObject obj:
                sb.Append('{');
                var first = true;
                foreach (var (key, value) in obj)
                {
                    if (!first)
                    {
                        sb.Append(", ");
                    }

                    first = false;
                    WriteString(sb, key);
                    sb.Append(": ");
                    Write(sb, value);
                }

                sb.Append('}');
                break;
            case JsonArray array:
                sb.Append('[');
                for (var i = 0; i < array.Count; i++)
                {
                    if (i > 0)
                    {
                        sb.Append(", ");
                    }

                    Write(sb, array[i]);
                }

                sb.Append(']');
                break;
            case JsonValue value:
                WriteValue(sb, value);
                break;
        }
    }

    private static void WriteValue(StringBuilder sb, JsonValue value)
    {
        switch (value.GetValueKind())
        {
            case JsonValueKind.String:
                WriteString(sb, value.GetValue<string>());
                break;
            case JsonValueKind.True:
                sb.Append("true");
                break;
            case JsonValueKind.False:
                sb.Append("false");
                break;
            case JsonValueKind.Number:
                WriteNumber(sb, value);
                break;
            default:
                sb.Append("null");
                break;
        }
    }

    private static void WriteNumber(StringBuilder sb, JsonValue value)
    {
        if (value.TryGetValue<JsonElement>(out var element))
        {
            // Raw numbers (e.g. 1e400, beyond double's range) are echoed as they were written.
            sb.Append(element.GetRawText());
        }
        else if (value.TryGetValue<double>(out var d))
        {
            sb.Append(double.IsFinite(d) ? d.ToString("R", CultureInfo.InvariantCulture) : "null");
        }
        else if (value.TryGetValue<float>(out var f))
        {
            sb.Append(float.IsFinite(f) ? f.ToString("R", CultureInfo.InvariantCulture) : "null");
        }
        else
        {
            // Integers of any width, decimals and raw JSON numbers serialize exactly.
            sb.Append(value.ToJsonString());
        }
    }

    private static void WriteString(StringBuilder sb, string s)
    {
        sb.Append('"');
        foreach (var c in s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\b': sb.Append("\\b"); break;
                case '\f': sb.Append("\\f"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                default:
                    if (c is >= ' ' and < (char)0x7F)
                    {
                        sb.Append(c);
                    }
                    else
                    {
                        sb.Append("\\u").Append(((int)c).ToString("X4", CultureInfo.InvariantCulture));
                    }

                    break;
            }
        }

        sb.Append('"');
    }
}
