"""Personalised propositions: for each client, the products it is most likely to buy next.

Collaborative filtering (implicit ALS on recency-weighted purchases) with a content part
for products too new to have buyers (the search's product embeddings) and the business
rules, measured in a time-split backtest against the baselines it must beat (global
popularity, popularity in the client's segment and region, the client's repeat purchases
plus popularity); tracked in MLflow, promoted by the registry's ``champion`` alias, and
published through the gate as the propositions marts.
"""
