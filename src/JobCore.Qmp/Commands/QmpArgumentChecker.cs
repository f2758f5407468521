using System.Text.Json.Nodes;

namespace JobCore.Qmp;

/// <summary>
/// Checks an argument object against a member list in QEMU's order (<c>qapi/qobject-input-visitor.c</c> driven by
/// the generated marshaller): members in declaration order — missing, then type — and only then unexpected members.
/// </summary>
internal static class QmpArgumentChecker
{
    /// <summary>Returns QEMU's error text for the first problem, or null when the object is acceptable.</summary>
    public static string? Check(IReadOnlyList<QmpArgument> members, JsonObject args, string prefix = "", QmpUnionVariants? variants = null)
    {
        var error = CheckMembers(members, args, prefix);
        if (error is not null)
        {
            return error;
        }

        IReadOnlyList<QmpArgument> variantMembers = [];
        if (variants is not null && args[variants.Discriminator] is JsonValue tag && tag.TryGetValue<string>(out var value))
        {
            variantMembers = variants.MembersOf(value) ?? [];
            error = CheckMembers(variantMembers, args, prefix);
            if (error is not null)
            {
                return error;
            }
        }

        foreach (var (name, _) in args)
        {
            if (!members.Any(m => m.Name == name) && !variantMembers.Any(m => m.Name == name))
            {
                return $"Parameter '{prefix}{name}' is unexpected";
            }
        }

        return null;
    }

    private static string? CheckMembers(IReadOnlyList<QmpArgument> members, JsonObject args, string prefix)
    {
        foreach (var member in members)
        {
            if (!args.TryGetPropertyValue(member.Name, out var value))
            {
                if (member.Optional)
                {
                    continue;
                }

                return $"Parameter '{prefix}{member.Name}' is missing";
            }

            var error = member.Type.Check(value, prefix + member.Name);
            if (error is not null)
            {
                return error;
            }
        }

        return null;
    }
}
