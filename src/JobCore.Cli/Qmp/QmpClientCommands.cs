using System.CommandLine;

namespace JobCore.Cli.Qmp;

/// <summary>The commands that drive jobcored (or QEMU) over QMP.</summary>
internal static class QmpClientCommands
{
    /// <summary>Adds <c>jobs</c>, the job verbs, <c>stream</c>/<c>commit</c>/<c>mirror</c>, <c>events</c> and <c>exec</c> to <paramref name="root"/>.</summary>
    public static void AddTo(RootCommand root)
    {
        root.Subcommands.Add(JobsCommand.Create());
        foreach (var command in JobVerbCommands.Create().Concat(BlockJobCommands.Create()))
        {
            root.Subcommands.Add(command);
        }

        root.Subcommands.Add(EventsCommand.Create());
        root.Subcommands.Add(ExecCommand.Create());
    }
}
