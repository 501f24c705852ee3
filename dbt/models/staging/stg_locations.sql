with

source as (

    select * from {{ source('jaffle_shop', 'raw_stores') }}

),

renamed as (

    select

        ----------  ids
        id as location_id,

        ---------- text
        name as location_name,

        ---------- numerics
        tax_rate,

        ---------- timestamps
        cast({{ dbt.date_trunc('day', 'opened_at') }} as date) as opened_date

    from source

)

select * from renamed
