"""Where a method runs: here or on Ray (``dispatch``, ``ray_engine``), and the model every worker can load
(``naming``). Nothing here knows what a method computes."""
