using System.Collections.Concurrent;

namespace JobCore.Qmp;

/// <summary>
/// The commands a QMP server offers. Built-in commands, the job commands and every plugin add theirs here
/// before the server starts; <c>query-commands</c> lists the table.
/// </summary>
public sealed class QmpCommandTable
{
    private readonly ConcurrentDictionary<string, QmpCommand> _commands = new(StringComparer.Ordinal);

    /// <summary>Adds <paramref name="command"/>; a second command with the same name is a programming error.</summary>
    /// <exception cref="ArgumentException">A command named <see cref="QmpCommand.Name"/> exists already.</exception>
    public QmpCommandTable Add(QmpCommand command)
    {
        ArgumentNullException.ThrowIfNull(command);
        ArgumentException.ThrowIfNullOrEmpty(command.Name);
        if (!_commands.TryAdd(command.Name, command))
        {
            throw new ArgumentException($"QMP command '{command.Name}' is already registered", nameof(command));
        }

        return this;
    }

    /// <summary>Adds a command built from its parts.</summary>
    public QmpCommandTable Add(string name, IReadOnlyList<QmpArgument> arguments, QmpCommandHandler handler) =>
        Add(new QmpCommand(name, arguments, handler));

    /// <summary>Looks a command up by its wire name.</summary>
    public bool TryGet(string name, out QmpCommand command) => _commands.TryGetValue(name, out command!);

    /// <summary>Whether a command named <paramref name="name"/> exists.</summary>
    public bool Contains(string name) => _commands.ContainsKey(name);

    /// <summary>All command names, sorted.</summary>
    public IReadOnlyList<string> Names => [.. _commands.Keys.Order(StringComparer.Ordinal)];
}
