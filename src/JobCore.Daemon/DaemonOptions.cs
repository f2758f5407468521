namespace JobCore.Daemon;

/// <summary>The daemon's command line.</summary>
/// <param name="Qmp">Endpoints to listen on.</param>
/// <param name="PluginDirectory">Directory of plugin assemblies, or null.</param>
/// <param name="LogLevel">Minimum log level name.</param>
internal sealed record DaemonOptions(IReadOnlyList<string> Qmp, DirectoryInfo? PluginDirectory, string LogLevel);
