"""Questions over the bench corpus (bench/_corpus.py) with known answers: each answer is a span of
the corpus text, and a search hits at k when one of its top k chunks holds the whole span.

Not a benchmark itself (the leading underscore keeps `bench/run_all.py` from running it).
"""

from __future__ import annotations

# (question, answer span); spans are matched with whitespace collapsed.
QUESTIONS: list[tuple[str, str]] = [
    ("How do I get a casefolded copy of a string?", "Return a casefolded copy of the string"),
    (
        "Which exception is raised when a dictionary key is missing?",
        "Raised when a mapping (dictionary) key is not found",
    ),
    ("What does the pass statement do?", "pass is a null operation"),
    (
        "How do I find the current working directory?",
        "Return a string representing the current working directory",
    ),
    ("How do I delete a file?", "Remove (delete) the file path"),
    (
        "How do I compare two floats for approximate equality?",
        "Return True if the values a and b are close to each other",
    ),
    ("How do I check whether a path exists?", "Return True if path refers to an existing path"),
    ("How do I turn an object into a JSON string?", "Serialize obj to a JSON formatted str"),
    (
        "How do I pick a random integer between two numbers?",
        "Return a random integer N such that a <= N <= b",
    ),
    (
        "What is the global interpreter lock?",
        "The mechanism used by the CPython interpreter to assure that only one thread executes Python bytecode at a time",
    ),
    (
        "What is a context manager used for in a with statement?",
        "The with statement is used to wrap the execution of a block with methods defined by a context manager",
    ),
    (
        "How do I read a CSV file?",
        "Return a reader object which will iterate over lines in the given csvfile",
    ),
    (
        "How do I parse command-line arguments?",
        "The argparse module makes it easy to write user-friendly command-line interfaces",
    ),
    (
        "How do I quickly remove all rows from a table?",
        "TRUNCATE quickly removes all rows from a set of tables",
    ),
    ("What does VACUUM do?", "VACUUM reclaims storage occupied by dead tuples"),
    ("How do I create a new database?", "CREATE DATABASE creates a new PostgreSQL database"),
    (
        "How can I see the query plan of a statement?",
        "This command displays the execution plan that the PostgreSQL planner generates for the supplied statement",
    ),
    (
        "How do I collect planner statistics for a table?",
        "ANALYZE collects statistics about the contents of tables in the database",
    ),
    (
        "How do I listen for notifications on a channel?",
        "LISTEN registers the current session as a listener on the notification channel",
    ),
    (
        "What is the default transaction isolation level?",
        "Read Committed is the default isolation level in PostgreSQL",
    ),
    (
        "How do I reorder a table physically by an index?",
        "CLUSTER instructs PostgreSQL to cluster the table specified by table_name based on the index specified by index_name",
    ),
    (
        "Which function returns its first non-null argument?",
        "The COALESCE function returns the first of its arguments that is not null",
    ),
    ("How do I create a role?", "CREATE ROLE adds a new role to a PostgreSQL database cluster"),
    ("How do I give a user privileges on a table?", "The GRANT command has two basic variants"),
    (
        "How do I copy data between a file and a table?",
        "COPY moves data between PostgreSQL tables and standard file-system files",
    ),
    ("How do I take a backup of a database?", "pg_dump is a utility for backing up a PostgreSQL database"),
    ("How do I get the absolute value of a number?", "Return the absolute value of a number"),
    (
        "How do I get the number of items in a container?",
        "Return the length (the number of items) of an object",
    ),
    ("How do I delete a directory and everything in it?", "Delete an entire directory tree"),
    (
        "How do I save an object to a file with pickle?",
        "Write the pickled representation of the object obj to the open file object file",
    ),
    (
        "How do I exit the interpreter from code?",
        "Raise a SystemExit exception, signaling an intention to exit the interpreter",
    ),
    (
        "How do I build an index on a column?",
        "CREATE INDEX constructs an index on the specified column(s) of the specified relation",
    ),
    (
        "What does the threading module provide?",
        "This module constructs higher-level threading interfaces on top of the lower level",
    ),
    (
        "Which module computes secure hashes and message digests?",
        "This module implements a common interface to many different secure hash and message digest algorithms",
    ),
    (
        "How do I iterate over several iterables one after another?",
        "Make an iterator that returns elements from the first iterable until it is exhausted, then proceeds to the next iterable",
    ),
    (
        "How do I cache the results of a function call?",
        "Decorator to wrap a function with a memoizing callable that saves up to the maxsize most recent calls",
    ),
    (
        "Which file controls client authentication?",
        "Client authentication is controlled by a configuration file, which traditionally is named pg_hba.conf",
    ),
    (
        "How do I split a URL into its parts?",
        "Parse a URL into six components, returning a 6-item named tuple",
    ),
    (
        "How do I create a network socket?",
        "Create a new socket using the given address family, socket type and protocol number",
    ),
    (
        "How can I run work in several processes like with threads?",
        "multiprocessing is a package that supports spawning processes using an API similar to the threading module",
    ),
    (
        "How do I loop over a sequence of numbers?",
        "If you do need to iterate over a sequence of numbers, the built-in function range() comes in handy",
    ),
    (
        "How much memory does the server use for shared buffers?",
        "Sets the amount of memory the database server uses for shared memory buffers",
    ),
    (
        "Which module reads INI-style configuration files?",
        "This module provides the ConfigParser class which implements a basic configuration language",
    ),
    (
        "How do I print a stack trace?",
        "This module provides a standard interface to extract, format and print stack traces of Python programs",
    ),
]
