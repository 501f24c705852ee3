with

customers as (

    select * from {{ ref('stg_customers') }}

),

orders as (

    select * from {{ ref('orders') }}

),

customer_orders_summary as (

    -- money is summed in integer cents (exact on every warehouse), then shown in dollars
    select
        orders.customer_id,

        count(distinct orders.order_id) as count_lifetime_orders,
        count(distinct orders.order_id) > 1 as is_repeat_buyer,
        min(orders.ordered_at) as first_ordered_at,
        max(orders.ordered_at) as last_ordered_at,
        sum(orders.subtotal_cents) as lifetime_spend_pretax_cents,
        sum(orders.tax_paid_cents) as lifetime_tax_paid_cents,
        sum(orders.order_total_cents) as lifetime_spend_cents

    from orders

    where
        orders.customer_id is not null
        and orders.order_id is not null

    group by 1

),

joined as (

    -- every customer, with zero orders and spend when they have not ordered yet
    select
        customers.*,

        cast(coalesce(customer_orders_summary.count_lifetime_orders, 0) as {{ dbt.type_bigint() }})
            as count_lifetime_orders,
        customer_orders_summary.first_ordered_at,
        customer_orders_summary.last_ordered_at,
        {{ dbt.datediff(
            'customer_orders_summary.first_ordered_at',
            'customer_orders_summary.last_ordered_at',
            'day'
        ) }} as days_between_first_and_last_order,
        {{ cents_to_dollars('coalesce(customer_orders_summary.lifetime_spend_pretax_cents, 0)') }}
            as lifetime_spend_pretax,
        {{ cents_to_dollars('coalesce(customer_orders_summary.lifetime_tax_paid_cents, 0)') }}
            as lifetime_tax_paid,
        {{ cents_to_dollars('coalesce(customer_orders_summary.lifetime_spend_cents, 0)') }}
            as lifetime_spend,

        case
            when customer_orders_summary.is_repeat_buyer then 'returning'
            else 'new'
        end as customer_type

    from customers

    left join customer_orders_summary
        on customers.customer_id = customer_orders_summary.customer_id

)

select * from joined
