-- a client's propositions are ranked 1, 2, 3, ... without a gap: in the latest run, and
-- at each cutoff of the backtest (that ranks start at 1 and stay within the top 10 is a
-- rule on the column's own values, in expectations/marts/)
with recommendations as (
    select * from {{ ref('mart_client_recommendations') }}
),

backtest as (
    select * from {{ ref('mart_recommendation_backtest') }}
),

lists as (
    select
        'mart_client_recommendations' as mart,
        client_id,
        cast(null as date) as cutoff_date,
        count(distinct rank) as ranks,
        max(rank) as last_rank
    from recommendations
    group by client_id
    union all
    select
        'mart_recommendation_backtest' as mart,
        client_id,
        cutoff_date,
        count(distinct rank) as ranks,
        max(rank) as last_rank
    from backtest
    group by client_id, cutoff_date
),

final as (
    select * from lists
    where ranks <> last_rank
)

select * from final
