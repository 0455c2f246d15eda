"""promptfoo suites in promptlab: read a promptfooconfig.yaml with the files it refers to
(config.py, files.py), map its assertions to evaluators (assertions.py), import it as prompts,
a dataset, evaluators and a draft experiment in one transaction (importer.py), and write an
experiment's results in promptfoo's JSON output shape with promptfoo's per-test verdicts
(results.py). docs/integrations/promptfoo.md says what is supported and how."""
