"""Background work as data: the job kinds (`catalog`), the outbox a transaction writes them to
and the relay that publishes them, and the job state clients poll."""
