using System.Text.Json;
using System.Text.Json.Nodes;

namespace JobCore.Qmp;

/// <summary>
/// The type of a command argument, checked before the handler runs with QEMU's texts
/// (<c>Invalid parameter type for 'x', expected: integer</c>, ...). Use the static members and factories.
/// </summary>
public abstract class QmpType
{
    private protected QmpType(string description) => Description = description;

    /// <summary>What an <c>expected: ...</c> error names (QEMU's wording: <c>string</c>, <c>integer</c>, ...).</summary>
    public string Description { get; }

    /// <summary>A JSON string.</summary>
    public static QmpType Str { get; } = new Scalar("string", static v => v.GetValueKind() == JsonValueKind.String);

    /// <summary>A JSON integer in the signed 64-bit range (QAPI <c>int</c>).</summary>
    public static QmpType WholeNumber { get; } = new Scalar("integer", static v => v.TryGetValue<long>(out _) || IsIntegralElement(v, signed: true));

    /// <summary>A JSON integer in the unsigned 64-bit range (QAPI <c>size</c>/<c>uint64</c>).</summary>
    public static QmpType Size { get; } = new Scalar("integer", static v =>
        (v.TryGetValue<long>(out var l) && l >= 0) || v.TryGetValue<ulong>(out _) || IsIntegralElement(v, signed: false));

    /// <summary>A JSON boolean.</summary>
    public static QmpType Bool { get; } = new Scalar("boolean", static v => v.GetValueKind() is JsonValueKind.True or JsonValueKind.False);

    /// <summary>Any JSON number (QAPI <c>number</c>).</summary>
    public static QmpType Number { get; } = new Scalar("number", static v => v.GetValueKind() == JsonValueKind.Number);

    /// <summary>Any JSON object, members unchecked.</summary>
    public static QmpType AnyObject { get; } = new ObjectType(null, null);

    /// <summary>Any JSON value.</summary>
    public static QmpType Any { get; } = new AnyType();

    /// <summary>JSON <c>null</c> (used inside <see cref="Alternate"/>).</summary>
    public static QmpType Null { get; } = new NullType();

    /// <summary>An object whose members are checked like command arguments (nested names appear as <c>a.b</c>).</summary>
    public static QmpType Struct(params QmpArgument[] members) => new ObjectType(members, null);

    /// <summary>An array whose elements have type <paramref name="element"/> (elements appear as <c>a[0]</c>).</summary>
    public static QmpType Array(QmpType element) => new ArrayType(element);

    /// <summary>A string limited to <paramref name="values"/>; others fail with <c>Parameter 'x' does not accept value 'v'</c>.</summary>
    public static QmpType Enum(params string[] values) => new EnumType(v => System.Array.IndexOf(values, v) >= 0);

    /// <summary>A string enum whose values can grow at run time (e.g. job types added by plugins).</summary>
    public static QmpType Enum(Func<string, bool> accepts) => new EnumType(accepts);

    /// <summary>
    /// A flat union (QAPI <c>union</c> with a <c>discriminator</c>): the <paramref name="baseMembers"/> (which include
    /// the discriminator) are checked first, then the members of the variant the discriminator selects, then
    /// unexpected members. <paramref name="variants"/> returns null for a value without extra members.
    /// </summary>
    public static QmpType Union(IReadOnlyList<QmpArgument> baseMembers, string discriminator, Func<string, IReadOnlyList<QmpArgument>?> variants) =>
        new ObjectType(baseMembers, new QmpUnionVariants(discriminator, variants));

    /// <summary>
    /// A value that may be any one of <paramref name="choices"/> (QAPI alternate, e.g. a node reference that is
    /// either a string or an object); a mismatch fails with <c>expected: <paramref name="name"/></c>.
    /// </summary>
    public static QmpType Alternate(string name, params QmpType[] choices) => new AlternateType(name, choices);

    /// <summary>Whether this type accepts <paramref name="value"/> by its JSON kind alone (used to pick an alternate).</summary>
    internal abstract bool MatchesKind(JsonNode? value);

    /// <summary>Checks <paramref name="value"/> at <paramref name="path"/>; returns the QEMU error text or null.</summary>
    internal virtual string? Check(JsonNode? value, string path) =>
        MatchesKind(value) ? null : $"Invalid parameter type for '{path}', expected: {Description}";

    private static bool IsIntegralElement(JsonValue v, bool signed) =>
        v.TryGetValue<JsonElement>(out var e) && e.ValueKind == JsonValueKind.Number
        && (signed ? e.TryGetInt64(out _) : e.TryGetUInt64(out _));

    private sealed class Scalar(string description, Func<JsonValue, bool> accepts) : QmpType(description)
    {
        internal override bool MatchesKind(JsonNode? value) => value is JsonValue v && accepts(v);
    }

    private sealed class AnyType() : QmpType("any")
    {
        internal override bool MatchesKind(JsonNode? value) => true;
    }

    private sealed class NullType() : QmpType("null")
    {
        internal override bool MatchesKind(JsonNode? value) => value is null;
    }

    private sealed class EnumType(Func<string, bool> accepts) : QmpType("string")
    {
        internal override bool MatchesKind(JsonNode? value) => value is JsonValue v && v.GetValueKind() == JsonValueKind.String;

        internal override string? Check(JsonNode? value, string path)
        {
            var error = base.Check(value, path);
            if (error is not null)
            {
                return error;
            }

            var s = value!.GetValue<string>();

            // QEMU 7.2 names a list element's bad enum value 'null' (the element has no member name).
            var name = path.EndsWith(']') ? "null" : path;
            return accepts(s) ? null : $"Parameter '{name}' does not accept value '{s}'";
        }
    }

    private sealed class ArrayType(QmpType element) : QmpType("array")
    {
        internal override bool MatchesKind(JsonNode? value) => value is JsonArray;

        internal override string? Check(JsonNode? value, string path)
        {
            if (value is not JsonArray array)
            {
                return base.Check(value, path);
            }

            for (var i = 0; i < array.Count; i++)
            {
                var error = element.Check(array[i], $"{path}[{i}]");
                if (error is not null)
                {
                    return error;
                }
            }

            return null;
        }
    }

    private sealed class AlternateType(string name, QmpType[] choices) : QmpType(name)
    {
        internal override bool MatchesKind(JsonNode? value) => choices.Any(c => c.MatchesKind(value));

        internal override string? Check(JsonNode? value, string path)
        {
            var choice = choices.FirstOrDefault(c => c.MatchesKind(value));
            return choice is null ? base.Check(value, path) : choice.Check(value, path);
        }
    }

    internal sealed class ObjectType(IReadOnlyList<QmpArgument>? members, QmpUnionVariants? variants) : QmpType("object")
    {
        internal override bool MatchesKind(JsonNode? value) => value is JsonObject;

        internal override string? Check(JsonNode? value, string path)
        {
            if (value is not JsonObject obj)
            {
                return base.Check(value, path);
            }

            return members is null ? null : QmpArgumentChecker.Check(members, obj, path + ".", variants);
        }
    }
}
