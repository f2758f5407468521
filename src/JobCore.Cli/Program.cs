using System.CommandLine;
using JobCore.Cli.Img;

// jobctl: one root command; each feature adds its command group here with one line (img: issue 3, QMP client: issue 5).
var root = new RootCommand("jobctl: JobCore's command-line tool.");
root.Subcommands.Add(ImgCommand.Create());
JobCore.Cli.Qmp.QmpClientCommands.AddTo(root);
root.Subcommands.Add(JobCore.Cli.Demo.DemoCommand.Create());
return await root.Parse(args).InvokeAsync().ConfigureAwait(false);
