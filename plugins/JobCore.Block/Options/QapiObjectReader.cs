using System.Text.Json;
using JobCore.Block.Graph;

namespace JobCore.Block.Options;

/// <summary>
/// Reads one JSON object the way QEMU's QAPI input visitor does: members are taken by name, every error names the
/// member with its full path (<c>file.filename</c>, <c>inject-error[0].errno</c>) and uses QEMU's wording, and
/// <see cref="CheckNoUnexpected"/> refuses members nobody asked for.
/// </summary>
internal sealed class QapiObjectReader
{
    private readonly JsonElement _object;
    private readonly string _prefix;
    private readonly HashSet<string> _unvisited;

    private QapiObjectReader(JsonElement obj, string prefix)
    {
        _object = obj;
        _prefix = prefix;
        _unvisited = new HashSet<string>(StringComparer.Ordinal);
        foreach (JsonProperty property in obj.EnumerateObject())
        {
            _unvisited.Add(property.Name);
        }
    }

    /// <summary>Starts reading <paramref name="element"/>, which must be an object (<paramref name="fullName"/> names it in errors).</summary>
    public static QapiObjectReader Start(JsonElement element, string fullName)
    {
        if (element.ValueKind != JsonValueKind.Object)
        {
            throw InvalidType(fullName.Length == 0 ? "<anonymous>" : fullName, "object");
        }

        return new QapiObjectReader(element, fullName.Length == 0 ? string.Empty : fullName + ".");
    }

    /// <summary>The full name of member <paramref name="name"/>.</summary>
    public string FullName(string name) => _prefix + name;

    /// <summary>Takes member <paramref name="name"/> if present.</summary>
    public bool TryTake(string name, out JsonElement value)
    {
        if (_object.TryGetProperty(name, out value))
        {
            _unvisited.Remove(name);
            return true;
        }

        return false;
    }

    /// <summary>Takes a mandatory member.</summary>
    public JsonElement TakeRequired(string name)
    {
        if (!TryTake(name, out JsonElement value))
        {
            throw new BlockGraphException($"Parameter '{FullName(name)}' is missing");
        }

        return value;
    }

    /// <summary>A mandatory string member.</summary>
    public string RequiredString(string name) => AsString(TakeRequired(name), FullName(name));

    /// <summary>An optional string member.</summary>
    public string? OptionalString(string name) =>
        TryTake(name, out JsonElement value) ? AsString(value, FullName(name)) : null;

    /// <summary>An optional boolean member.</summary>
    public bool? OptionalBool(string name)
    {
        if (!TryTake(name, out JsonElement value))
        {
            return null;
        }

        return value.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw InvalidType(FullName(name), "boolean"),
        };
    }

    /// <summary>An optional integer member (a JSON number without a fraction, in the 64-bit range).</summary>
    public long? OptionalInt(string name)
    {
        if (!TryTake(name, out JsonElement value))
        {
            return null;
        }

        if (value.ValueKind != JsonValueKind.Number || !value.TryGetInt64(out long result))
        {
            throw InvalidType(FullName(name), "integer");
        }

        return result;
    }

    /// <summary>
    /// An optional enum member; <paramref name="values"/> are the wire names. QEMU names only the member itself
    /// (not its path) when it refuses a value.
    /// </summary>
    public string? OptionalEnum(string name, IReadOnlyCollection<string> values)
    {
        if (!TryTake(name, out JsonElement value))
        {
            return null;
        }

        return AsEnum(value, name, FullName(name), values);
    }

    /// <summary>Checks an enum value taken by the caller.</summary>
    public static string AsEnum(JsonElement value, string shortName, string fullName, IReadOnlyCollection<string> values)
    {
        string text = AsString(value, fullName);
        if (!values.Contains(text))
        {
            throw new BlockGraphException($"Parameter '{shortName}' does not accept value '{text}'");
        }

        return text;
    }

    /// <summary>Refuses the first member that was never taken: <c>Parameter 'x' is unexpected</c>.</summary>
    public void CheckNoUnexpected()
    {
        foreach (JsonProperty property in _object.EnumerateObject())
        {
            if (_unvisited.Contains(property.Name))
            {
                throw new BlockGraphException($"Parameter '{FullName(property.Name)}' is unexpected");
            }
        }
    }

    /// <summary>QEMU's <c>Invalid parameter type for 'x', expected: T</c>.</summary>
    public static BlockGraphException InvalidType(string fullName, string expected) =>
        new($"Invalid parameter type for '{fullName}', expected: {expected}");

    private static string AsString(JsonElement value, string fullName) =>
        value.ValueKind == JsonValueKind.String ? value.GetString()! : throw InvalidType(fullName, "string");
}
