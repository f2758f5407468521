// jobcored entry point; the QMP host is built in JobCore.Qmp (issue 5).
Console.Error.WriteLine("jobcored: not yet serving; see README.md");
return 64;
