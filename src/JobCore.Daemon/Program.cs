using System.CommandLine;
using JobCore.Daemon;

var qmpOption = new Option<string[]>("--qmp")
{
    Description = "Listen for QMP clients: unix:PATH or tcp:HOST:PORT (QEMU's ,server=on,wait=off accepted). Repeatable.",
    Arity = ArgumentArity.OneOrMore,
    AllowMultipleArgumentsPerToken = false,
    Required = true,
};
var pluginsOption = new Option<DirectoryInfo?>("--plugins") { Description = "Load job-type plugin assemblies from this directory." };
var logLevelOption = new Option<string>("--log-level")
{
    Description = "Minimum log level on stderr (Trace, Debug, Information, Warning, Error).",
    DefaultValueFactory = _ => "Information",
};

var root = new RootCommand("jobcored: the JobCore daemon; serves QEMU's job commands over QMP.")
{
    qmpOption,
    pluginsOption,
    logLevelOption,
};
root.SetAction((parse, cancellationToken) => DaemonHost.RunAsync(
    new DaemonOptions(parse.GetValue(qmpOption)!, parse.GetValue(pluginsOption), parse.GetValue(logLevelOption)!),
    cancellationToken));
return await root.Parse(args).InvokeAsync().ConfigureAwait(false);
