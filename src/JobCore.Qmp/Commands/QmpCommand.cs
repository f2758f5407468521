using System.Text.Json.Nodes;

namespace JobCore.Qmp;

/// <summary>Runs a command whose arguments have already been checked against its schema.</summary>
/// <param name="context">The calling client and the server.</param>
/// <param name="arguments">The checked arguments (an empty object when the request had none).</param>
/// <param name="cancellationToken">Cancelled when the server shuts down.</param>
/// <returns>The <c>return</c> value; null means <c>{}</c>. Throw <see cref="QmpException"/> for an error reply.</returns>
public delegate ValueTask<JsonNode?> QmpCommandHandler(QmpCommandContext context, JsonObject arguments, CancellationToken cancellationToken);

/// <summary>A QMP command: its wire name, its argument schema and its handler.</summary>
/// <param name="Name">The <c>execute</c> name, e.g. <c>job-pause</c>.</param>
/// <param name="Arguments">The members of the argument object, in QEMU's declaration order (checks follow it).</param>
/// <param name="Handler">Runs the command.</param>
public sealed record QmpCommand(string Name, IReadOnlyList<QmpArgument> Arguments, QmpCommandHandler Handler)
{
    /// <summary>
    /// For a command whose argument object is a flat union (e.g. <c>blockdev-add</c> on <c>driver</c>): the members
    /// each discriminator value adds. Null for a plain argument list.
    /// </summary>
    public QmpUnionVariants? Variants { get; init; }

    /// <summary>
    /// QAPI's <c>'boxed': true</c> for a command that checks its whole argument object itself (e.g.
    /// <c>blockdev-add</c>, whose block layer visits the options in QEMU's order): the dispatcher skips the schema
    /// check and <see cref="Arguments"/> only documents the members.
    /// </summary>
    public bool Boxed { get; init; }
}

/// <summary>The variant part of a flat union: which member discriminates, and the extra members of each value.</summary>
/// <param name="Discriminator">The name of the (string-valued) base member that selects the variant.</param>
/// <param name="Lookup">Returns the extra members for a discriminator value, or null when it adds none.</param>
public sealed record QmpUnionVariants(string Discriminator, Func<string, IReadOnlyList<QmpArgument>?> Lookup)
{
    /// <summary>The extra members for <paramref name="value"/>, or null.</summary>
    public IReadOnlyList<QmpArgument>? MembersOf(string value) => Lookup(value);
}
