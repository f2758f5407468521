using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace JobCore.Qmp.Json;

/// <summary>
/// Push parser: builds a <see cref="JsonNode"/> from tokens as they arrive and remembers the first syntax error,
/// with the texts and the order of checks of QEMU's recursive-descent parser (<c>qobject/json-parser.c</c>).
/// Building while tokens arrive keeps memory proportional to the value, not to a token queue.
/// </summary>
internal sealed class QmpJsonTreeBuilder
{
    private const string ExpectingValue = "expecting value";

    private readonly Stack<Frame> _frames = new();
    private JsonNode? _root;
    private bool _complete;
    private string? _error;

    private enum Expect
    {
        FirstValueOrClose,
        Value,
        SeparatorOrClose,
        FirstKeyOrClose,
        Key,
        Colon,
    }

    /// <summary>The first error seen since the last <see cref="Reset"/> (without the "JSON parse error, " prefix).</summary>
    public string? Error => _error;

    /// <summary>Forgets the current value and error.</summary>
    public void Reset()
    {
        _frames.Clear();
        _root = null;
        _complete = false;
        _error = null;
    }

    /// <summary>Returns the finished value, or the error text (with QEMU's prefix) when the tokens did not form one.</summary>
    public bool TryFinish(out JsonNode? value, out string? error)
    {
        value = null;
        error = _error ?? (_complete ? null : "premature EOI");
        if (error is not null)
        {
            error = "JSON parse error, " + error;
            return false;
        }

        value = _root;
        return true;
    }

    /// <summary>Consumes one token.</summary>
    public void Add(QmpTokenKind kind, ReadOnlySpan<byte> text)
    {
        if (_error is not null || _complete)
        {
            return;
        }

        if (_frames.Count == 0)
        {
            StartValue(kind, text, isKey: false);
            return;
        }

        var frame = _frames.Peek();
        switch (frame.Expect)
        {
            case Expect.FirstValueOrClose when kind == QmpTokenKind.RightBracket:
            case Expect.SeparatorOrClose when frame.Array is not null && kind == QmpTokenKind.RightBracket:
            case Expect.FirstKeyOrClose when kind == QmpTokenKind.RightBrace:
            case Expect.SeparatorOrClose when frame.Object is not null && kind == QmpTokenKind.RightBrace:
                _frames.Pop();
                Completed((JsonNode?)frame.Array ?? frame.Object, frame.IsKey);
                return;

            case Expect.FirstValueOrClose:
            case Expect.Value:
                StartValue(kind, text, isKey: false);
                return;

            case Expect.FirstKeyOrClose:
            case Expect.Key:
                StartValue(kind, text, isKey: true);
                return;

            case Expect.Colon:
                if (kind == QmpTokenKind.Colon)
                {
                    frame.Expect = Expect.Value;
                }
                else
                {
                    _error = "missing : in object pair";
                }

                return;

            case Expect.SeparatorOrClose:
                if (kind == QmpTokenKind.Comma)
                {
                    frame.Expect = frame.Array is not null ? Expect.Value : Expect.Key;
                }
                else
                {
                    _error = frame.Array is not null ? "expected separator in list" : "expected separator in dict";
                }

                return;
        }
    }

    private void StartValue(QmpTokenKind kind, ReadOnlySpan<byte> text, bool isKey)
    {
        switch (kind)
        {
            case QmpTokenKind.LeftBrace:
                _frames.Push(new Frame { Object = new JsonObject(), Expect = Expect.FirstKeyOrClose, IsKey = isKey });
                return;
            case QmpTokenKind.LeftBracket:
                _frames.Push(new Frame { Array = new JsonArray(), Expect = Expect.FirstValueOrClose, IsKey = isKey });
                return;
            case QmpTokenKind.String:
                var s = DecodeString(text, out var error);
                if (error is not null)
                {
                    _error = error;
                    return;
                }

                if (isKey)
                {
                    var frame = _frames.Peek();
                    frame.Key = s;
                    frame.Expect = Expect.Colon;
                    return;
                }

                Completed(JsonValue.Create(s), isKey: false);
                return;
            case QmpTokenKind.Integer:
            case QmpTokenKind.Float:
                Completed(ParseNumber(kind, text), isKey);
                return;
            case QmpTokenKind.Keyword:
                JsonNode? keyword;
                if (text.SequenceEqual("true"u8))
                {
                    keyword = JsonValue.Create(true);
                }
                else if (text.SequenceEqual("false"u8))
                {
                    keyword = JsonValue.Create(false);
                }
                else if (text.SequenceEqual("null"u8))
                {
                    keyword = null;
                }
                else
                {
                    _error = $"invalid keyword '{Encoding.ASCII.GetString(text)}'";
                    return;
                }

                Completed(keyword, isKey);
                return;
            default:
                _error = ExpectingValue;
                return;
        }
    }

    private void Completed(JsonNode? value, bool isKey)
    {
        if (isKey)
        {
            // QEMU parses whatever stands in key position as a value first, then rejects it.
            _error = "key is not a string in object";
            return;
        }

        if (_frames.Count == 0)
        {
            _root = value;
            _complete = true;
            return;
        }

        var frame = _frames.Peek();
        if (frame.Array is not null)
        {
            frame.Array.Add(value);
        }
        else
        {
            var key = frame.Key!;
            if (frame.Object!.ContainsKey(key))
            {
                _error = "duplicate key";
                return;
            }

            frame.Object.Add(key, value);
        }

        frame.Expect = Expect.SeparatorOrClose;
    }

    /// <summary>JSON integers become long, else ulong, else double; floats become double (QEMU's QNum rules).</summary>
    private static JsonValue ParseNumber(QmpTokenKind kind, ReadOnlySpan<byte> text)
    {
        if (kind == QmpTokenKind.Integer)
        {
            if (long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var l))
            {
                return JsonValue.Create(l);
            }

            if (text[0] != (byte)'-' && ulong.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var u))
            {
                return JsonValue.Create(u);
            }
        }

        var d = double.Parse(text, NumberStyles.Float, CultureInfo.InvariantCulture);
        if (double.IsFinite(d))
        {
            return JsonValue.Create(d);
        }

        // Out of double's range: keep the literal (still valid JSON when echoed), where QEMU would print "inf".
        using var doc = JsonDocument.Parse(text.ToArray());
        return JsonValue.Create(doc.RootElement.Clone())!;
    }

    /// <summary>Decodes a quoted token: escapes, modified UTF-8 (C0 80 is U+0000), and QEMU's code point checks.</summary>
    private static string DecodeString(ReadOnlySpan<byte> token, out string? error)
    {
        error = null;
        var quote = token[0];
        var sb = new StringBuilder(token.Length);
        var i = 1;
        while (i < token.Length && token[i] != quote)
        {
            var b = token[i];
            if (b == (byte)'\\')
            {
                var start = i;
                var e = token[i + 1];
                i += 2;
                switch (e)
                {
                    case (byte)'"': sb.Append('"'); break;
                    case (byte)'\'': sb.Append('\''); break;
                    case (byte)'\\': sb.Append('\\'); break;
                    case (byte)'/': sb.Append('/'); break;
                    case (byte)'b': sb.Append('\b'); break;
                    case (byte)'f': sb.Append('\f'); break;
                    case (byte)'n': sb.Append('\n'); break;
                    case (byte)'r': sb.Append('\r'); break;
                    case (byte)'t': sb.Append('\t'); break;
                    case (byte)'u':
                        var cp = Hex4(token, i);
                        i += 4;
                        if (cp is >= 0xD800 and <= 0xDBFF && i + 1 < token.Length && token[i] == (byte)'\\' && token[i + 1] == (byte)'u')
                        {
                            var trailing = Hex4(token, i + 2);
                            if (trailing is >= 0xDC00 and <= 0xDFFF)
                            {
                                cp = 0x10000 + ((cp & 0x3FF) << 10) + (trailing & 0x3FF);
                                i += 6;
                            }
                            else
                            {
                                cp = -1;
                            }
                        }

                        if (!IsValidCodePoint(cp))
                        {
                            var end = Math.Min(i, token.Length);
                            error = $"{Encoding.Latin1.GetString(token[start..end])} is not a valid Unicode character";
                            return string.Empty;
                        }

                        sb.Append(char.ConvertFromUtf32(cp));
                        break;
                    default:
                        error = "invalid escape sequence in string";
                        return string.Empty;
                }

                continue;
            }

            var codePoint = DecodeUtf8(token, ref i);
            if (codePoint < 0)
            {
                error = "invalid UTF-8 sequence in string";
                return string.Empty;
            }

            if (codePoint < 0x10000)
            {
                sb.Append((char)codePoint);
            }
            else
            {
                sb.Append(char.ConvertFromUtf32(codePoint));
            }
        }

        return sb.ToString();
    }

    private static int Hex4(ReadOnlySpan<byte> s, int at)
    {
        var cp = 0;
        for (var k = 0; k < 4; k++)
        {
            if (at + k >= s.Length)
            {
                return -1;
            }

            var c = s[at + k];
            int v = c switch
            {
                >= (byte)'0' and <= (byte)'9' => c - '0',
                >= (byte)'a' and <= (byte)'f' => c - 'a' + 10,
                >= (byte)'A' and <= (byte)'F' => c - 'A' + 10,
                _ => -1,
            };
            if (v < 0)
            {
                return -1;
            }

            cp = (cp << 4) | v;
        }

        return cp;
    }

    /// <summary>Unicode scalar values minus noncharacters (QEMU rejects U+FDD0..U+FDEF and U+xxFFFE/U+xxFFFF).</summary>
    private static bool IsValidCodePoint(int cp) =>
        cp is >= 0 and <= 0x10FFFF
        && cp is not (>= 0xD800 and <= 0xDFFF)
        && cp is not (>= 0xFDD0 and <= 0xFDEF)
        && (cp & 0xFFFE) != 0xFFFE;

    /// <summary>Decodes one modified-UTF-8 sequence at <paramref name="i"/>; returns -1 when it is invalid.</summary>
    private static int DecodeUtf8(ReadOnlySpan<byte> s, ref int i)
    {
        var b = s[i];
        if (b < 0x80)
        {
            i++;
            return b;
        }

        int length, cp, min;
        if (b is >= 0xC0 and < 0xE0)
        {
            (length, cp, min) = (2, b & 0x1F, 0x80);
        }
        else if (b is >= 0xE0 and < 0xF0)
        {
            (length, cp, min) = (3, b & 0x0F, 0x800);
        }
        else if (b is >= 0xF0 and < 0xF8)
        {
            (length, cp, min) = (4, b & 0x07, 0x10000);
        }
        else
        {
            return -1;
        }

        for (var k = 1; k < length; k++)
        {
            if (i + k >= s.Length || (s[i + k] & 0xC0) != 0x80)
            {
                return -1;
            }

            cp = (cp << 6) | (s[i + k] & 0x3F);
        }

        i += length;
        if (length == 2 && cp == 0)
        {
            return 0; // modified UTF-8 encodes U+0000 as C0 80
        }

        return cp < min || !IsValidCodePoint(cp) ? -1 : cp;
    }

    private sealed class Frame
    {
        public JsonArray? Array;
        public JsonObject? Object;
        public string? Key;
        public Expect Expect;
        public bool IsKey;
    }
}
