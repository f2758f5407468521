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
public sealed record QmpCommand(string Name, IReadOnlyList<QmpArgument> Arguments, QmpCommandHandler Handler);
