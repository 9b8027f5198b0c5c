"""Sample data of the task families for the contract test (tests/integration/test_task_contract.py).

A task family without a branch in that test's ``samples()`` brings its own file here,
``<task name>.py``, defining ``samples(tmp, rng) -> ((train, dev, infer), extra_flags, bad)``:
three files in the task's format (labels a learnable function of the text), the flags the task
needs, and a file with one bad row whose error must name the file and line.  ``common`` has the
tiny vocabulary's words and the writers."""
