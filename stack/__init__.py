"""Everything that sets up and starts the system on one machine.

``postgres`` and ``temporal`` run the embedded servers, ``supervisor`` is ``assistants up``,
``connect`` gives CLI commands a database whether or not the stack is running.
"""
