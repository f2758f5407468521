using System.Buffers;

namespace JobCore.Qmp.Json;

/// <summary>Kinds of token the QMP JSON lexer produces.</summary>
internal enum QmpTokenKind
{
    LeftBrace,
    RightBrace,
    LeftBracket,
    RightBracket,
    Colon,
    Comma,
    String,
    Integer,
    Float,
    Keyword,

    /// <summary>A byte sequence that cannot start or continue any token ("stray").</summary>
    Error,

    /// <summary>A token cut off because it grew past the size limit.</summary>
    Oversized,
}

/// <summary>
/// Byte-level JSON lexer with QEMU's observable behaviour (<c>qobject/json-lexer.c</c>): single-quoted strings are
/// accepted, control characters and bytes 0xFE/0xFF end a string with an error, and after an error input is skipped
/// until a bracket, a control character or 0xFE/0xFF, which re-synchronises the stream. UTF-8 validation of string
/// contents is left to the parser, as in QEMU.
/// </summary>
internal sealed class QmpJsonLexer
{
    private enum State
    {
        Start,
        Recovery,
        DoubleQuoted,
        DoubleQuotedEscape,
        SingleQuoted,
        SingleQuotedEscape,
        Zero,
        Sign,
        Digits,
        Mantissa,
        MantissaDigits,
        Exponent,
        ExponentSign,
        ExponentDigits,
        Keyword,
    }

    private readonly Action<QmpTokenKind, ReadOnlySpan<byte>> _emit;
    private readonly int _maxTokenBytes;
    private byte[] _token = new byte[256];
    private int _length;
    private State _state = State.Start;

    /// <param name="emit">Receives every token; the span is only valid during the call.</param>
    /// <param name="maxTokenBytes">A token longer than this is cut off and reported as <see cref="QmpTokenKind.Oversized"/>.</param>
    public QmpJsonLexer(Action<QmpTokenKind, ReadOnlySpan<byte>> emit, int maxTokenBytes)
    {
        _emit = emit;
        _maxTokenBytes = maxTokenBytes;
    }

    // Bytes that end a run of ordinary string content: control characters, 0xFE/0xFF, the backslash and the quote.
    private static readonly SearchValues<byte> DoubleQuotedSpecial = SearchValues.Create([.. ControlBytes(), (byte)'\\', (byte)'"']);
    private static readonly SearchValues<byte> SingleQuotedSpecial = SearchValues.Create([.. ControlBytes(), (byte)'\\', (byte)'\'']);

    /// <summary>Feeds bytes; tokens are emitted as soon as they are complete.</summary>
    public void Feed(ReadOnlySpan<byte> input)
    {
        var i = 0;
        while (i < input.Length)
        {
            if (_state is State.DoubleQuoted or State.SingleQuoted)
            {
                // Copy a run of plain string content at once (same result as byte by byte, much faster for big strings).
                var rest = input[i..];
                var run = rest.IndexOfAny(_state == State.DoubleQuoted ? DoubleQuotedSpecial : SingleQuotedSpecial);
                run = run < 0 ? rest.Length : run;
                if (run > 0)
                {
                    var take = Math.Min(run, _maxTokenBytes + 1 - _length);
                    AppendRange(rest[..take]);
                    i += take;
                    CheckSize();
                    continue;
                }
            }

            FeedByte(input[i++]);
            CheckSize();
        }
    }

    private static IEnumerable<byte> ControlBytes() => Enumerable.Range(0, 0x20).Select(b => (byte)b).Append((byte)0xFE).Append((byte)0xFF);

    private void CheckSize()
    {
        if (_length > _maxTokenBytes)
        {
            // QEMU's guard against one token growing without bound: hand over what we have and start afresh.
            Emit(QmpTokenKind.Oversized);
            _state = State.Start;
        }
    }

    private void AppendRange(ReadOnlySpan<byte> bytes)
    {
        if (_length + bytes.Length > _token.Length)
        {
            var size = _token.Length;
            while (size < _length + bytes.Length)
            {
                size = checked(size * 2);
            }

            Array.Resize(ref _token, size);
        }

        bytes.CopyTo(_token.AsSpan(_length));
        _length += bytes.Length;
    }

    private void FeedByte(byte b)
    {
        while (true)
        {
            switch (_state)
            {
                case State.Start:
                    StartToken(b);
                    return;

                case State.Recovery:
                    if (b is (byte)'[' or (byte)']' or (byte)'{' or (byte)'}' or >= 0xFE || (b < 0x20 && b != (byte)'\t'))
                    {
                        _state = State.Start;
                        continue;
                    }

                    return;

                case State.DoubleQuoted:
                case State.SingleQuoted:
                    Append(b);
                    if (b is < 0x20 or >= 0xFE)
                    {
                        Fail();
                    }
                    else if (b == (byte)'\\')
                    {
                        _state = _state == State.DoubleQuoted ? State.DoubleQuotedEscape : State.SingleQuotedEscape;
                    }
                    else if (b == (_state == State.DoubleQuoted ? (byte)'"' : (byte)'\''))
                    {
                        Emit(QmpTokenKind.String);
                        _state = State.Start;
                    }

                    return;

                case State.DoubleQuotedEscape:
                case State.SingleQuotedEscape:
                    Append(b);
                    if (b is < 0x20 or >= 0xFE)
                    {
                        Fail();
                    }
                    else
                    {
                        _state = _state == State.DoubleQuotedEscape ? State.DoubleQuoted : State.SingleQuoted;
                    }

                    return;

                case State.Sign:
                    Append(b);
                    _state = b == (byte)'0' ? State.Zero : IsDigit(b) ? State.Digits : FailState();
                    return;

                case State.Zero:
                    if (b == (byte)'.')
                    {
                        Append(b);
                        _state = State.Mantissa;
                        return;
                    }

                    if (IsDigit(b) || b >= 0x80)
                    {
                        Append(b);
                        Fail();
                        return;
                    }

                    Emit(QmpTokenKind.Integer);
                    _state = State.Start;
                    continue;

                case State.Digits:
                    if (IsDigit(b) || b is (byte)'.' or (byte)'e' or (byte)'E')
                    {
                        Append(b);
                        _state = IsDigit(b) ? State.Digits : b == (byte)'.' ? State.Mantissa : State.Exponent;
                        return;
                    }

                    if (!EndToken(b, QmpTokenKind.Integer))
                    {
                        return;
                    }

                    continue;

                case State.Mantissa:
                    Append(b);
                    _state = IsDigit(b) ? State.MantissaDigits : FailState();
                    return;

                case State.MantissaDigits:
                    if (IsDigit(b) || b is (byte)'e' or (byte)'E')
                    {
                        Append(b);
                        _state = IsDigit(b) ? State.MantissaDigits : State.Exponent;
                        return;
                    }

                    if (!EndToken(b, QmpTokenKind.Float))
                    {
                        return;
                    }

                    continue;

                case State.Exponent:
                    Append(b);
                    _state = b is (byte)'+' or (byte)'-' ? State.ExponentSign : IsDigit(b) ? State.ExponentDigits : FailState();
                    return;

                case State.ExponentSign:
                    Append(b);
                    _state = IsDigit(b) ? State.ExponentDigits : FailState();
                    return;

                case State.ExponentDigits:
                    if (IsDigit(b))
                    {
                        Append(b);
                        return;
                    }

                    if (!EndToken(b, QmpTokenKind.Float))
                    {
                        return;
                    }

                    continue;

                case State.Keyword:
                    if (b is >= (byte)'a' and <= (byte)'z')
                    {
                        Append(b);
                        return;
                    }

                    if (!EndToken(b, QmpTokenKind.Keyword))
                    {
                        return;
                    }

                    continue;

                default:
                    throw new InvalidOperationException($"QMP lexer in unknown state {_state}");
            }
        }
    }

    /// <summary>
    /// Ends a number or keyword at byte <paramref name="b"/>. ASCII bytes terminate the token and are then lexed
    /// afresh (returns true); a non-ASCII byte is glued to the token and makes it an error (returns false).
    /// </summary>
    private bool EndToken(byte b, QmpTokenKind kind)
    {
        if (b >= 0x80)
        {
            Append(b);
            Fail();
            return false;
        }

        Emit(kind);
        _state = State.Start;
        return true;
    }

    private void StartToken(byte b)
    {
        switch (b)
        {
            case (byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n':
                return;
            case (byte)'{':
                Single(b, QmpTokenKind.LeftBrace);
                return;
            case (byte)'}':
                Single(b, QmpTokenKind.RightBrace);
                return;
            case (byte)'[':
                Single(b, QmpTokenKind.LeftBracket);
                return;
            case (byte)']':
                Single(b, QmpTokenKind.RightBracket);
                return;
            case (byte)':':
                Single(b, QmpTokenKind.Colon);
                return;
            case (byte)',':
                Single(b, QmpTokenKind.Comma);
                return;
        }

        Append(b);
        _state = b switch
        {
            (byte)'"' => State.DoubleQuoted,
            (byte)'\'' => State.SingleQuoted,
            (byte)'0' => State.Zero,
            (byte)'-' => State.Sign,
            >= (byte)'1' and <= (byte)'9' => State.Digits,
            >= (byte)'a' and <= (byte)'z' => State.Keyword,
            _ => FailState(),
        };
    }

    private void Single(byte b, QmpTokenKind kind)
    {
        Append(b);
        Emit(kind);
    }

    private static bool IsDigit(byte b) => b is >= (byte)'0' and <= (byte)'9';

    private State FailState()
    {
        Fail();
        return State.Recovery;
    }

    private void Fail()
    {
        Emit(QmpTokenKind.Error);
        _state = State.Recovery;
    }

    private void Append(byte b)
    {
        if (_length == _token.Length)
        {
            Array.Resize(ref _token, checked(_token.Length * 2));
        }

        _token[_length++] = b;
    }

    private void Emit(QmpTokenKind kind)
    {
        var length = _length;
        _length = 0;
        _emit(kind, _token.AsSpan(0, length));
        if (_token.Length > 1 << 20)
        {
            // Do not keep a huge buffer for the rest of the connection after one big string.
            _token = new byte[256];
        }
    }
}
