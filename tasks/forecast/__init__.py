"""The forecast: when each host and wave will be done, and what would make it sooner.

Rooms: `model` (the inputs and answers as plain data), `selfheal` (a client's own renewal against AMT's
windows and its own retries), `simulate` (a wave's run, server queue and technicians, pure), `inputs`
(inventory + plan + state store -> model), `actuals` (what the store says happened), `whatif`
(re-runs with one change), `render` (rows, text, page).
"""
