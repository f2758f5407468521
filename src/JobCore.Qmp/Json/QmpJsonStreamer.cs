using System.Text;
using System.Text.Json.Nodes;

namespace JobCore.Qmp.Json;

/// <summary>One message cut from the byte stream: a JSON value, or the error QEMU would report for those bytes.</summary>
/// <param name="Value">The parsed value (a JSON <c>null</c> is a null reference); meaningless when <paramref name="Error"/> is set.</param>
/// <param name="Error">The error text (e.g. <c>JSON parse error, expecting value</c>), or null.</param>
internal readonly record struct QmpParsedMessage(JsonNode? Value, string? Error);

/// <summary>
/// Cuts a byte stream into JSON messages the way QEMU's <c>json-streamer.c</c> does: a message ends when its
/// brackets balance (objects may span reads, several may share a line), and a message is refused with QEMU's texts
/// when it holds a stray byte, exceeds the size or token-count limit, or nests too deep. After an error the stream
/// re-synchronises and later messages are served normally.
/// </summary>
internal sealed class QmpJsonStreamer
{
    private readonly QmpJsonLexer _lexer;
    private readonly QmpJsonTreeBuilder _builder = new();
    private readonly QmpLimits _limits;
    private readonly List<QmpParsedMessage> _output = [];
    private int _braces;
    private int _brackets;
    private long _size;
    private long _tokens;

    public QmpJsonStreamer(QmpLimits limits)
    {
        _limits = limits;
        _lexer = new QmpJsonLexer(OnToken, limits.MaxMessageBytes);
    }

    /// <summary>Feeds bytes and returns the messages completed by them (the list is reused by the next call).</summary>
    public IReadOnlyList<QmpParsedMessage> Feed(ReadOnlySpan<byte> bytes)
    {
        _output.Clear();
        _lexer.Feed(bytes);
        return _output;
    }

    private void OnToken(QmpTokenKind kind, ReadOnlySpan<byte> text)
    {
        switch (kind)
        {
            case QmpTokenKind.LeftBrace: _braces++; break;
            case QmpTokenKind.RightBrace: _braces--; break;
            case QmpTokenKind.LeftBracket: _brackets++; break;
            case QmpTokenKind.RightBracket: _brackets--; break;
            case QmpTokenKind.Error:
                EmitError($"JSON parse error, stray '{Printable(text)}'");
                return;
        }

        if (_size + text.Length + 1 > _limits.MaxMessageBytes)
        {
            EmitError("JSON token size limit exceeded");
            return;
        }

        if (_tokens + 1 > _limits.MaxTokens)
        {
            EmitError("JSON token count limit exceeded");
            return;
        }

        if (_braces + _brackets > _limits.MaxNesting)
        {
            EmitError("JSON nesting depth limit exceeded");
            return;
        }

        _builder.Add(kind, text);
        _size += text.Length;
        _tokens++;

        // Keep collecting while something is open and nothing was closed too often; "[}" ends the message at once.
        if ((_braces > 0 || _brackets > 0) && _braces >= 0 && _brackets >= 0)
        {
            return;
        }

        _output.Add(_builder.TryFinish(out var value, out var error) ? new QmpParsedMessage(value, null) : new QmpParsedMessage(null, error));
        ResetMessage();
    }

    private void EmitError(string error)
    {
        _output.Add(new QmpParsedMessage(null, error));
        ResetMessage();
    }

    private void ResetMessage()
    {
        _braces = 0;
        _brackets = 0;
        _size = 0;
        _tokens = 0;
        _builder.Reset();
    }

    /// <summary>The stray bytes as QEMU prints them: cut at the first NUL, invalid UTF-8 shown as U+FFFD.</summary>
    private static string Printable(ReadOnlySpan<byte> text)
    {
        var nul = text.IndexOf((byte)0);
        if (nul >= 0)
        {
            text = text[..nul];
        }

        return Encoding.UTF8.GetString(text);
    }
}
