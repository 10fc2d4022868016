"""The instructor's kit: release, grade, gradebooks, the grading sandbox and the
Dask cluster path. It needs the ``grade`` extra (nbgrader), and ``cluster`` for
Dask and PostgreSQL; students never import it.
"""
