"""promptfoo suites in promptlab: read a promptfooconfig.yaml with the files it refers to
(config.py, files.py), map its assertions to evaluator kinds (assertions.py), import it as
prompts, a dataset whose items carry each test's assertions, evaluators for defaultTest's and a
draft experiment in one transaction (importer.py), and write an experiment's results, graded by
evaluations.grading, in promptfoo's JSON output shape (results.py).
docs/integrations/promptfoo.md says what is supported and how."""
